"""The dashboard's web server: pages, JSON API, pushed updates, and its safety rules.

Owns: the ASGI application (``create_app``) and its lifecycle on a socket (``DashboardServer``,
a context manager running uvicorn in a thread, so ``testbed run --ui`` serves while the runner
works and ``testbed ui`` serves until Ctrl-C).

Routes (``RUN`` is a run's directory name under the served folder):

- ``GET /`` the runs; ``GET /runs/RUN`` the defender's page; ``GET /runs/RUN/truth`` the truth
  page; ``GET /static/...`` the page's assets, served from the package (works offline).
- ``GET /api/runs``, ``/api/runs/RUN/topology``, ``/api/runs/RUN/defender?at=S``,
  ``/api/runs/RUN/truth?at=S`` (403 while the truth view is closed), and the pushed updates
  ``/api/runs/RUN/stream?view=defender|truth`` (server-sent events, checked every 0.25 s).
- ``POST /api/runs/RUN/actions`` a defender's action (quarantine, release, block, unblock);
  ``POST /api/runs/RUN/hints`` an exercise's next hint; ``GET|POST /api/runs/RUN/playback``
  the run's clock (a real run's is fixed; a live simulated run's plays x1, x10 or pauses:
  ``{"rate": 0 | 1 | 10}``).

Safety: every request but the static assets needs the session token, compared in constant time
(``secrets.compare_digest``): from the URL printed at start (``?token=``, then kept in a
same-site, HTTP-only cookie and dropped from the address bar), a cookie, or the
``X-Testbed-Token`` header; a POST needs the header (a cross-site form cannot set it) and a
same-origin ``Origin``. No CORS headers are ever sent; the ``Host`` header must name this server
(DNS rebinding); a content security policy allows only this origin's scripts, styles and
connections.

The wall: defender endpoints are built by ``testbed.ui.defender`` only; the truth endpoints by
``testbed.ui.truth_view`` behind ``truth_gate``.

Must not touch: anything but through ``defender``, ``truth_view`` and ``sources``.
"""

from __future__ import annotations

import asyncio
import html
import json
import secrets
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from testbed.actions import Action
from testbed.errors import TestbedError
from testbed.runner.manual import MANUAL_ACTIONS
from testbed.ui import defender
from testbed.ui.sources import RunCatalog, RunNotServed, RunSource
from testbed.ui.truth_view import truth_gate, truth_view

__all__ = ["CONTENT_SECURITY_POLICY", "TOKEN_COOKIE", "TOKEN_HEADER", "DashboardServer",
           "create_app", "is_loopback"]

TOKEN_HEADER = "X-Testbed-Token"
TOKEN_COOKIE = "testbed_ui_token"
PUSH_EVERY_S = 0.25  # how often a stream looks for news: updates show well within a second
KEEPALIVE_EVERY_S = 10.0
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                           "form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),  # the page's URL may have carried the token
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
STATIC = resources.files("testbed.ui") / "static"


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


class _SecurityHeaders:
    """Adds the security headers to every response (pure ASGI: streams pass through), and
    refuses every CORS preflight: no other origin may call this server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            refusal = PlainTextResponse("cross-origin requests are refused", status_code=403,
                                        headers={key.decode(): value.decode()
                                                 for key, value in SECURITY_HEADERS})
            await refusal(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _Guard:
    """The session token and the same-origin rule."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    def valid(self, presented: str | None) -> bool:
        if not presented:
            return False
        return secrets.compare_digest(presented.encode(), self._token)

    def reading(self, request: Request) -> bool:
        return self.valid(request.headers.get(TOKEN_HEADER)) or \
            self.valid(request.cookies.get(TOKEN_COOKIE)) or \
            self.valid(request.query_params.get("token"))

    def acting(self, request: Request) -> bool:
        """A state-changing request: the header (not a cookie a foreign page could ride on)."""
        return self.valid(request.headers.get(TOKEN_HEADER))

    @staticmethod
    def same_origin(request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is None:
            return True  # not a browser's cross-site request (curl, tests)
        return urlsplit(origin).netloc == request.headers.get("host")


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return _json({"error": message, **extra}, status)


def _at(request: Request) -> float | None:
    value = request.query_params.get("at")
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def create_app(runs_dir: Path, token: str, *, allowed_hosts: list[str] | None = None,
               stopping: threading.Event | None = None) -> Starlette:
    """The dashboard serving the runs under ``runs_dir`` with session ``token``."""
    catalog = RunCatalog(runs_dir)
    guard = _Guard(token)
    stop_event = stopping or threading.Event()

    def page(name: str, **values: str) -> str:
        text = (STATIC / name).read_text(encoding="utf-8")
        for key, value in {"TOKEN": token, **values}.items():
            text = text.replace(f"__{key}__", html.escape(value, quote=True))
        return text

    async def in_thread(function: Callable[[], Any]) -> Any:
        return await anyio.to_thread.run_sync(function)

    def lookup(request: Request) -> RunSource:
        return catalog.get(request.path_params["run"])

    def with_run(handler: Callable[[Request, RunSource], Awaitable[Response]],
                 *, acting: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if acting:
                if not guard.acting(request):
                    return _error(401, f"a valid session token in the {TOKEN_HEADER} header "
                                       "is required")
                if not guard.same_origin(request):
                    return _error(403, "cross-origin requests are refused")
            elif not guard.reading(request):
                return _error(401, "a valid session token is required")
            try:
                source = await in_thread(lambda: lookup(request))
            except RunNotServed as err:
                return _error(404, str(err))
            return await handler(request, source)
        return endpoint

    async def html_page(request: Request, name: str, **values: str) -> Response:
        if not guard.reading(request):
            return HTMLResponse(page("locked.html"), status_code=401)
        if "token" in request.query_params:  # keep it in a cookie, drop it from the address bar
            response: Response = RedirectResponse(request.url.path, status_code=303)
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict",
                                path="/")
            return response
        return HTMLResponse(page(name, **values))

    async def index(request: Request) -> Response:
        return await html_page(request, "index.html")

    async def defender_page(request: Request) -> Response:
        return await html_page(request, "run.html", RUN=request.path_params["run"],
                               VIEW="defender")

    async def truth_page(request: Request) -> Response:
        return await html_page(request, "run.html", RUN=request.path_params["run"],
                               VIEW="truth")

    async def runs(request: Request) -> Response:
        if not guard.reading(request):
            return _error(401, "a valid session token is required")

        def listing() -> list[dict[str, Any]]:
            rows = []
            for source in catalog.runs():
                scenario = source.scenario()
                exercise = scenario.spec.exercise if scenario is not None else None
                rows.append({"name": source.name, "phase": source.phase, "live": source.live,
                             "scenario": source.facts.scenario,
                             "backend": source.facts.backend,
                             "exercise": exercise.title if exercise is not None else None})
            return rows

        return _json({"runs": await in_thread(listing)})

    async def topology(request: Request, source: RunSource) -> Response:
        scenario = await in_thread(source.scenario)
        if scenario is None:
            return _error(404, f"run {source.name} has no readable scenario yet")
        return _json(defender.topology_view(scenario.topology))

    def defender_payload(source: RunSource, at_s: float | None) -> dict[str, Any]:
        scenario = source.scenario()
        payload = defender.defender_view(source, scenario, at_s)
        payload["truth_open"] = truth_gate(source, scenario).open
        return payload

    def truth_payload(source: RunSource, at_s: float | None) -> dict[str, Any] | None:
        scenario = source.scenario()
        gate = truth_gate(source, scenario)
        if not gate.open:
            return None
        return {**truth_view(source, scenario, at_s), "reason": gate.reason}

    async def defender_state(request: Request, source: RunSource) -> Response:
        at_s = _at(request)
        return _json(await in_thread(lambda: defender_payload(source, at_s)))

    async def truth_state(request: Request, source: RunSource) -> Response:
        at_s = _at(request)
        payload = await in_thread(lambda: truth_payload(source, at_s))
        if payload is None:
            gate = await in_thread(lambda: truth_gate(source, source.scenario()))
            return _error(403, gate.reason)
        return _json(payload)

    async def stream(request: Request, source: RunSource) -> Response:
        view = request.query_params.get("view", "defender")
        if view not in ("defender", "truth"):
            return _error(400, "view is defender or truth")
        name = source.name

        def snapshot() -> str:
            fresh = catalog.get(name)  # a live run may have finished meanwhile
            if view == "defender":
                return json.dumps(defender_payload(fresh, None), sort_keys=True)
            payload = truth_payload(fresh, None)
            if payload is None:
                return json.dumps({"closed": truth_gate(fresh, fresh.scenario()).reason})
            return json.dumps(payload, sort_keys=True)

        async def events() -> AsyncIterator[str]:
            last, quiet = "", 0.0
            yield "retry: 1000\n\n"
            while not stop_event.is_set():
                if await request.is_disconnected():
                    return
                try:
                    current = await in_thread(snapshot)
                except RunNotServed:
                    return
                if current != last:
                    last, quiet = current, 0.0
                    yield f"data: {current}\n\n"
                elif quiet >= KEEPALIVE_EVERY_S:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
                await asyncio.sleep(PUSH_EVERY_S)
                quiet += PUSH_EVERY_S

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"X-Accel-Buffering": "no"})

    async def actions(request: Request, source: RunSource) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body must be a JSON object")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        user = body.pop("user", None)
        try:
            action = Action.model_validate(body)
        except ValidationError as err:
            return _error(400, f"not an action: {err.errors()[0]['msg']}")
        if action.kind not in MANUAL_ACTIONS:
            return _error(400, f"the dashboard's actions are {', '.join(MANUAL_ACTIONS)}")
        scenario = await in_thread(source.scenario)
        if scenario is not None and action.target not in scenario.topology.hosts:
            return _error(400, f"no host {action.target!r} in this run's topology")
        try:
            record = await in_thread(lambda: defender.act(
                source, action, user=str(user) if user else None))
        except TestbedError as err:
            failed = getattr(err, "action_record", None)
            return _error(409, str(err), record=failed.model_dump(mode="json")
                          if failed is not None else None)
        return _json({"record": record.model_dump(mode="json")})

    async def hints(request: Request, source: RunSource) -> Response:
        try:
            hint = await in_thread(lambda: defender.reveal_hint(source, source.scenario()))
        except TestbedError as err:
            return _error(409, str(err))
        return _json(hint)

    async def playback(request: Request, source: RunSource) -> Response:
        clock = source.clock()
        if request.method == "POST":
            if not guard.acting(request):
                return _error(401, f"a valid session token in the {TOKEN_HEADER} header "
                                   "is required")
            try:
                body = await request.json()
                clock.set_rate(float(body["rate"]))
            except (ValueError, KeyError, TypeError):
                return _error(400, 'the body is {"rate": 0 | 1 | 10}')
            except TestbedError as err:
                return _error(409, str(err))
        return _json({"controllable": clock.controllable, "now_s": clock.now_s(),
                      "rate": getattr(clock, "rate", None)})

    routes = [
        Route("/", index),
        Route("/runs/{run}", defender_page),
        Route("/runs/{run}/truth", truth_page),
        Route("/api/runs", runs),
        Route("/api/runs/{run}/topology", with_run(topology)),
        Route("/api/runs/{run}/defender", with_run(defender_state)),
        Route("/api/runs/{run}/truth", with_run(truth_state)),
        Route("/api/runs/{run}/stream", with_run(stream)),
        Route("/api/runs/{run}/actions", with_run(actions, acting=True), methods=["POST"]),
        Route("/api/runs/{run}/hints", with_run(hints, acting=True), methods=["POST"]),
        Route("/api/runs/{run}/playback", with_run(playback), methods=["GET"]),
        Route("/api/runs/{run}/playback", with_run(playback, acting=True), methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
    ]
    hosts = allowed_hosts or ["127.0.0.1", "localhost", "::1", "[::1]"]
    return Starlette(routes=routes, middleware=[
        Middleware(_SecurityHeaders),
        Middleware(TrustedHostMiddleware, allowed_hosts=hosts),
    ])


class DashboardServer:
    """``with DashboardServer(runs_dir, host=..., port=...) as server: print(server.url)``.

    Binds the socket at once (``port=0``: a free port), serves from a thread, and stops on exit
    (open streams end within a second)."""

    def __init__(self, runs_dir: Path, *, host: str = "127.0.0.1", port: int = 8765,
                 token: str | None = None) -> None:
        self.runs_dir = Path(runs_dir)
        self.host = host
        self.token = token or secrets.token_urlsafe(24)
        self._stopping = threading.Event()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError as err:
            self._socket.close()
            raise TestbedError(f"cannot listen on {host}:{port}: {err.strerror} "
                               "(choose another --port)") from err
        self._socket.listen(128)  # connections made before uvicorn is up wait in the backlog
        self.port = int(self._socket.getsockname()[1])
        allowed = ["127.0.0.1", "localhost", "::1", "[::1]", host]
        self.app = create_app(self.runs_dir, self.token, allowed_hosts=allowed,
                              stopping=self._stopping)
        config = uvicorn.Config(self.app, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=1, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._socket]},
                                        name="testbed-ui", daemon=True)

    @property
    def base_url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    def url(self, path: str = "/") -> str:
        """The URL to open, carrying the session token (as Jupyter prints it)."""
        return f"{self.base_url}{path}?token={self.token}"

    def __enter__(self) -> DashboardServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()
