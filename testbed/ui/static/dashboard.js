// Testbed dashboard: the runs list, the defender's view and the truth view of one run.
// Served from the package; the content security policy allows only same-origin scripts and
// connections, so nothing here is inline and nothing is fetched from elsewhere.
// The defender's page asks only /defender and /stream?view=defender: the truth is not in it.
"use strict";
(() => {
  const token = document.querySelector('meta[name="testbed-token"]').content;
  const view = document.body.dataset.view;
  const run = document.body.dataset.run;
  const $ = (id) => document.getElementById(id);

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function api(path, options) {
    const init = Object.assign({credentials: "same-origin"}, options || {});
    init.headers = Object.assign({"X-Testbed-Token": token, "Content-Type": "application/json"},
                                 init.headers || {});
    return fetch(path, init);
  }

  const seconds = (value) => (value === null || value === undefined) ? "–" : value.toFixed(1);

  // ---- the runs ---------------------------------------------------------------------------
  async function showRuns() {
    const response = await api("/api/runs");
    const data = await response.json();
    const body = document.querySelector("#runs tbody");
    body.replaceChildren();
    for (const row of data.runs) {
      body.append(el("tr", {"data-run": row.name},
        el("td", {}, el("a", {href: "/runs/" + encodeURIComponent(row.name)}, row.name)),
        el("td", {}, row.scenario || ""),
        el("td", {}, el("span", {class: "badge " + row.phase}, row.phase)),
        el("td", {}, row.backend || ""),
        el("td", {}, row.exercise || ""),
        el("td", {}, el("a", {href: "/runs/" + encodeURIComponent(row.name) + "/truth"}, "truth view"))));
    }
  }

  // ---- one run ----------------------------------------------------------------------------
  const base = "/api/runs/" + encodeURIComponent(run || "");
  let hostTiles = {};
  let selected = null;
  let replayAt = null;        // null: following the run; a number: the slider's moment
  let lastDefender = null;
  let lastTruth = null;
  let sliderReady = false;

  async function loadTopology() {
    const response = await api(base + "/topology");
    if (!response.ok) { setTimeout(loadTopology, 1000); return; }
    const topology = await response.json();
    $("topology-name").textContent = topology.name;
    const box = $("topology");
    box.replaceChildren();
    hostTiles = {};
    for (const segment of topology.segments) {
      const hosts = el("div", {class: "hosts"});
      for (const host of segment.hosts) {
        const tile = el("button", {type: "button", class: "host tier-" + host.tier,
                                   "data-host": host.name, title: host.tier + " " + host.ip},
                        host.name, el("small", {}, host.ip));
        tile.addEventListener("click", () => select(host.name));
        hostTiles[host.name] = tile;
        hosts.append(tile);
      }
      box.append(el("div", {class: "segment", "data-segment": segment.name},
        el("h3", {}, segment.name + " ", el("span", {class: "muted"}, segment.cidr)), hosts));
    }
    const routers = el("div", {class: "routers"});
    for (const router of topology.routers) {
      routers.append(el("div", {"data-router": router.name},
        "router " + router.name + ": " + router.segments.join(" · ")));
    }
    box.append(routers);
    if (lastDefender) renderDefender(lastDefender);
    if (lastTruth) renderTruth(lastTruth);
  }

  function select(name) {
    selected = name;
    $("selected").textContent = name;
    for (const [host, tile] of Object.entries(hostTiles)) tile.classList.toggle("selected", host === name);
    updateButtons();
  }

  function updateButtons() {
    const canAct = view === "defender" && lastDefender && lastDefender.live && replayAt === null && selected;
    for (const id of ["act-quarantine", "act-release", "act-block"]) $(id).disabled = !canAct;
  }

  async function act(kind) {
    if (!selected) return;
    const body = {kind: kind, target: selected};
    if (kind === "block") body.destination = $("block-destination").value.trim() || "any";
    $("action-status").textContent = kind + " " + selected + "…";
    const response = await api(base + "/actions", {method: "POST", body: JSON.stringify(body)});
    const data = await response.json();
    $("action-status").textContent = response.ok
      ? kind + " " + selected + ": enforced in " + (1000 * data.record.enforced_s).toFixed(1) + " ms"
      : kind + " " + selected + " failed: " + data.error;
  }

  // ---- playback of a live simulated run: x1, x10, pause ------------------------------------
  function renderPlayback(state) {
    const playing = state.playback_rate;
    $("playback").hidden = playing === null || playing === undefined || replayAt !== null;
    for (const button of $("playback").querySelectorAll("button")) {
      button.classList.toggle("active", parseFloat(button.dataset.rate) === playing);
    }
  }

  async function setRate(rate) {
    const response = await api(base + "/playback", {method: "POST", body: JSON.stringify({rate: rate})});
    if (!response.ok) $("action-status").textContent = "playback: " + (await response.json()).error;
  }

  function renderDefender(state) {
    lastDefender = state;
    renderPlayback(state);
    $("phase").textContent = state.phase;
    $("phase").className = "badge " + state.phase;
    $("clock").textContent = seconds(replayAt !== null ? replayAt : state.clock_s);
    if (state.exercise) renderExercise(state.exercise);
    const quarantined = new Set(state.quarantined);
    for (const [host, tile] of Object.entries(hostTiles)) {
      tile.classList.toggle("quarantined", quarantined.has(host));
      const count = state.alerted_hosts[host] || 0;
      tile.classList.toggle("alerted", count > 0);
      let badge = tile.querySelector(".count");
      if (count > 0) {
        if (!badge) { badge = el("span", {class: "count"}); tile.insertBefore(badge, tile.querySelector("small")); }
        badge.textContent = count;
      } else if (badge) badge.remove();
    }
    $("alert-count").textContent = "(" + state.alerts_total + ")";
    const alerts = document.querySelector("#alerts tbody");
    alerts.replaceChildren(...state.alerts.slice().reverse().map((alert) => el("tr", {},
      el("td", {}, seconds(alert.time_s)), el("td", {}, alert.detector),
      el("td", {}, (alert.accused || "?") + " " + alert.src_ip),
      el("td", {}, alert.dest_ip + (alert.dest_port ? ":" + alert.dest_port : "")),
      el("td", {}, alert.severity), el("td", {}, alert.signature),
      el("td", {}, el("details", {}, el("summary", {}, "evidence"),
                      el("pre", {}, JSON.stringify(alert.evidence, null, 1)))))));
    const log = document.querySelector("#action-log tbody");
    log.replaceChildren(...state.actions.slice().reverse().map((record) => el("tr",
      {class: record.ok ? "" : "failed", "data-action": record.action, "data-target": record.target},
      el("td", {}, seconds(record.time_s)), el("td", {}, record.action),
      el("td", {}, record.target + (record.params && record.params.destination && record.params.destination !== "any" ? " → " + record.params.destination : "")),
      el("td", {}, record.cause.manual ? "manual: " + record.cause.manual : (record.cause.detector || "responder")),
      el("td", {}, record.ok ? "yes" : "no: " + (record.error || "")))));
    const finished = !state.live;
    $("replay").hidden = !finished;
    if (finished && state.end_s !== null && !sliderReady) {
      $("slider").max = state.end_s.toFixed(1);
      $("slider").value = state.end_s.toFixed(1);
      $("slider-at").textContent = seconds(state.end_s) + " s";
      sliderReady = true;
    }
    const other = $("other-view");
    if (view === "defender") {
      other.hidden = !state.truth_open;
      other.textContent = "truth view";
      other.href = "/runs/" + encodeURIComponent(run) + "/truth";
    }
    updateButtons();
  }

  let exerciseShown = false;
  function renderExercise(exercise) {
    $("exercise").hidden = false;
    if (!exerciseShown) {
      $("exercise-title").textContent = exercise.title;
      $("exercise-briefing").textContent = exercise.briefing;
      $("objectives").replaceChildren(...exercise.objectives.map((text) => el("li", {}, text)));
      exerciseShown = true;
    }
    $("hints").replaceChildren(...exercise.hints.map((text) => el("li", {}, text)));
    $("hint").disabled = exercise.hints.length >= exercise.hints_total || view !== "defender";
    $("hint").textContent = "reveal a hint (h): " + exercise.hints.length + "/" + exercise.hints_total;
  }

  async function revealHint() {
    const response = await api(base + "/hints", {method: "POST", body: "{}"});
    if (!response.ok) $("action-status").textContent = (await response.json()).error;
  }

  function renderTruth(state) {
    lastTruth = state;
    if (state.closed || state.error) {
      $("truth-panel").hidden = true;
      $("notice").hidden = false;
      $("notice").textContent = "The truth view is closed: " + (state.closed || state.error);
      return;
    }
    $("notice").hidden = true;
    $("truth-panel").hidden = false;
    $("truth-status").textContent = state.infected_total + " infected" +
      (state.status ? ", " + state.status : "") + (state.peak !== null ? ", peak " + state.peak : "");
    const infected = new Set(state.infected.map((each) => each.host));
    for (const [host, tile] of Object.entries(hostTiles)) tile.classList.toggle("infected", infected.has(host));
    $("infected").replaceChildren(...state.infected.map((each) =>
      el("li", {}, seconds(each.time_s) + " s " + each.host + " (" + each.tier + ")")));
    drawCurve(state.curve, replayAt);
    const score = $("score");
    score.replaceChildren();
    if (state.score) {
      score.append(el("p", {}, el("strong", {}, "grade " + state.score.grade + " (" + state.score.score.toFixed(0) + ")"),
        ", contained: " + state.score.contained + ", detection " + seconds(state.score.time_to_first_detection_s) +
        " s, containment " + seconds(state.score.time_to_containment_s) + " s, benign quarantined " +
        state.score.benign_hosts_quarantined));
    }
    const debrief = $("debrief");
    debrief.replaceChildren();
    if (state.debrief) {
      const d = state.debrief;
      debrief.append(el("h3", {}, "Debrief: " + d.title),
        el("ul", {}, ...d.objectives.map((o) => el("li", {class: o.met === null ? "" : (o.met ? "met" : "missed")},
          (o.met === null ? "? " : (o.met ? "✔ " : "✘ ")) + o.text + (o.value !== null ? " (" + o.value + ")" : "")))),
        el("p", {}, "What would have changed the grade:"),
        el("ul", {}, ...d.would_have_changed.map((text) => el("li", {}, text))),
        el("ul", {}, ...d.lessons.map((text) => el("li", {}, text))),
        el("p", {class: "muted"}, "hints used: " + d.hints_used + "/" + d.hints_total));
    }
  }

  function drawCurve(points, at) {
    const svg = $("curve");
    const ns = "http://www.w3.org/2000/svg";
    svg.replaceChildren();
    const end = Math.max(1, (lastDefender && (lastDefender.end_s || lastDefender.clock_s)) || 1,
                         ...points.map((p) => p[0]));
    const top = Math.max(1, ...points.map((p) => p[1]));
    const x = (t) => 10 + 280 * t / end, y = (n) => 110 - 100 * n / top;
    let path = "10,110";
    let count = 0;
    for (const [t, n] of points) { path += " " + x(t) + "," + y(count) + " " + x(t) + "," + y(n); count = n; }
    path += " " + x(end) + "," + y(count);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", path);
    svg.append(line);
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", "12"); label.setAttribute("y", "10");
    label.textContent = "infected (max " + top + ") over " + end.toFixed(0) + " s";
    svg.append(label);
    if (at !== null && at !== undefined) {
      const now = document.createElementNS(ns, "line");
      now.setAttribute("class", "now");
      now.setAttribute("x1", x(at)); now.setAttribute("x2", x(at));
      now.setAttribute("y1", "10"); now.setAttribute("y2", "110");
      svg.append(now);
    }
  }

  async function showMoment(at) {
    const query = "?at=" + encodeURIComponent(at);
    const defender = await api(base + "/defender" + query);
    if (defender.ok) renderDefender(await defender.json());
    if (view === "truth") {
      const truth = await api(base + "/truth" + query);
      renderTruth(await truth.json());
    }
  }

  function follow(kind, render) {
    const source = new EventSource(base + "/stream?view=" + kind);
    source.onmessage = (event) => { if (replayAt === null) render(JSON.parse(event.data)); };
    return source;
  }

  function startRun() {
    $("view-name").textContent = view === "truth" ? "truth view" : "defender's view";
    $("view-name").classList.toggle("truth", view === "truth");
    if (view === "truth") {
      $("actions-bar").hidden = true;
      $("other-view").textContent = "defender's view";
      $("other-view").href = "/runs/" + encodeURIComponent(run);
    }
    loadTopology();
    follow("defender", renderDefender);
    if (view === "truth") follow("truth", renderTruth);
    $("slider").addEventListener("input", () => {
      replayAt = parseFloat($("slider").value);
      $("slider-at").textContent = seconds(replayAt) + " s";
      showMoment(replayAt);
    });
    $("follow").addEventListener("click", () => {
      replayAt = null;
      $("slider").value = $("slider").max;
      $("slider-at").textContent = seconds(parseFloat($("slider").max)) + " s";
      showMoment(parseFloat($("slider").max));
    });
    $("act-quarantine").addEventListener("click", () => act("quarantine"));
    $("act-release").addEventListener("click", () => act("release"));
    $("act-block").addEventListener("click", () => act("block"));
    $("hint").addEventListener("click", revealHint);
    for (const button of $("playback").querySelectorAll("button")) {
      button.addEventListener("click", () => setRate(parseFloat(button.dataset.rate)));
    }
    document.addEventListener("keydown", (event) => {
      if (event.target instanceof HTMLInputElement || event.ctrlKey || event.metaKey || event.altKey) return;
      const keys = {q: "act-quarantine", r: "act-release", b: "act-block", h: "hint"};
      const id = keys[event.key];
      if (id && !$(id).disabled && view === "defender") $(id).click();
    });
  }

  if (view === "index") showRuns(); else startRun();
})();
