"""The red-team driver: search for the worst-case worm, evaluate it on held-out seeds against the
built-in profiles, explain what each detector missed, confirm on an emulation backend.

Owns: ``RedTeamConfig`` (what ``testbed redteam`` was asked), ``run_redteam`` and the phases it
runs in ``out`` (all resumable):

1. search: an Optuna study (TPE, seeded) over ``testbed.redteam.space``; each trial is one worm
   run on ``seeds`` seeds (``seed .. seed+K-1`` of the scenario) through a
   ``testbed.experiments`` engine, scored by the objective's mean. The study lives in
   ``optuna.journal`` (Optuna's journal storage: one appended line per change), so a rerun of
   the same command continues it; a trial cut by Ctrl-C or a crash is re-queued with the same
   parameters and its finished seeds are reused. The built-in profiles at their defaults are
   the first trials, so the search starts from the known ladder.
2. evaluation: the best worm, every built-in profile at its defaults and the scenario's own worm
   on ``eval_seeds`` held-out seeds (``seed+1000 ..``), run directories kept in
   ``evaluation/``; detector evidence from the best worm's runs.
3. confirmation: the best worm and the best built-in profile on ``confirm_backend`` (netns) on
   the first ``confirm_seeds`` evaluation seeds, side by side with the sim on the same seeds;
   skipped with a reason when this process cannot emulate.

Must not: write outside ``out``, send anything beyond the backends' own namespaces (cells run
through the ordinary runner), or set parameters outside the agent's own ranges.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from testbed.errors import RunError, TestbedError
from testbed.experiments.progress import ProgressBar, format_duration
from testbed.model.load_scenario import Scenario
from testbed.redteam.evaluate import WatchdogEngine, cell_directory, remove_runs, run_worms
from testbed.redteam.evidence import detector_evidence
from testbed.redteam.objectives import (
    OBJECTIVES,
    RunSummary,
    check_objective,
    objective_value,
    trial_score,
)
from testbed.redteam.space import SearchSpace, WormChoice, discover_space

__all__ = ["RedTeamConfig", "RedTeamError", "RedTeamInterrupted", "RedTeamOutcome",
           "load_redteam_scenario", "run_redteam"]

STUDY_NAME = "redteam"
JOURNAL = "optuna.journal"
IDENTITY = "study.json"
HELD_OUT_SEED_OFFSET = 1000
BEST = "best"
SCENARIO_WORM = "scenario-worm"
BUILTIN_PREFIX = "builtin-"


class RedTeamError(TestbedError):
    """The red team cannot run as asked (input, optimiser, output directory)."""


class RedTeamInterrupted(TestbedError):
    """Ctrl-C: what was finished is kept in the output directory (rerun to continue)."""

    def __init__(self, message: str, outcome: RedTeamOutcome | None) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class RedTeamConfig:
    scenario_path: Path
    out: Path
    backend: str = "sim"
    budget: int = 40
    objective: str = "infected"
    seeds: int = 5
    eval_seeds: int = 10
    confirm_seeds: int = 3
    confirm_backend: str = "netns"
    engine: str = "local"
    ray_address: str | None = None
    profiles: tuple[str, ...] | None = None
    sampler_seed: int = 0
    cell_timeout_s: float | None = 120.0  # local engine, sim cells: a hung run fails its trial


@dataclass
class RedTeamOutcome:
    """Everything the report shows (``data`` is redteam.json) and the files written."""

    data: dict[str, Any]
    paths: dict[str, Path] = field(default_factory=dict)


def _require_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise RedTeamError("testbed redteam needs Optuna: pip install "
                           "'adaptive-worm-testbed[redteam]' (scripts/install.sh python "
                           "installs it)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def load_redteam_scenario(config: RedTeamConfig) -> Scenario:
    """The scenario, checked for everything the red team needs before it starts anything."""
    from testbed.backends import BACKENDS
    from testbed.detection import load_scenario
    from testbed.sim.engine import PACKET_DETECTORS

    check_objective(config.objective)
    for name, value, minimum in (("--budget", config.budget, 1), ("--seeds", config.seeds, 1),
                                 ("--eval-seeds", config.eval_seeds, 1),
                                 ("--confirm-seeds", config.confirm_seeds, 0)):
        if value < minimum:
            raise RedTeamError(f"{name} must be at least {minimum} (got {value})")
    for backend in (config.backend, config.confirm_backend):
        BACKENDS.get(backend)  # RegistryError listing the known ones
    scenario = load_scenario(config.scenario_path)
    if config.backend == "sim":
        packet_readers = sorted({d.name for d in scenario.spec.detectors} & PACKET_DETECTORS)
        if packet_readers:
            raise RedTeamError(
                f"{config.scenario_path}: detector {packet_readers[0]!r} reads real packets, "
                "which the sim backend does not produce; search with --backend netns, or "
                "red-team a copy of the scenario without that detector")
    return scenario


def _fingerprint(config: RedTeamConfig, scenario: Scenario, space: SearchSpace) -> str:
    from testbed.experiments.matrix import file_digest, fingerprint_of

    return fingerprint_of(scenario.spec.model_dump(mode="json"),
                          file_digest(scenario.topology_path), config.objective, config.backend,
                          config.seeds, space.as_dict(), config.sampler_seed)


def _check_identity(out: Path, fingerprint: str, scenario: Scenario, objective: str) -> None:
    marker = out / IDENTITY
    if marker.exists():
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        if recorded.get("fingerprint") != fingerprint:
            raise RedTeamError(
                f"{out} holds a red-team search with other inputs (scenario "
                f"{recorded.get('scenario')!r}, objective {recorded.get('objective')!r}, or "
                "another search space or seed count): choose another --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"fingerprint": fingerprint, "scenario": scenario.name,
                                  "objective": objective}, indent=2) + "\n", encoding="utf-8")


def _scenario_worm(scenario: Scenario) -> WormChoice:
    params = dict(scenario.spec.worm.params)
    if scenario.spec.worm.rate is not None:
        params["rate"] = scenario.spec.worm.rate
    return WormChoice.of(scenario.spec.worm.profile, params)


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _worm_record(worm: WormChoice) -> dict[str, Any]:
    return {"profile": worm.profile, "params": worm.params_dict, "text": worm.describe()}


def _runs_record(runs: list[RunSummary], objective: str) -> dict[str, Any]:
    infected = [run.infected_total for run in runs]
    return {"score": trial_score(runs, objective) if runs else None,
            "infected": infected, "infected_median": _median([float(i) for i in infected]),
            "value_median": _median([run.value_weighted_loss for run in runs]),
            "jewel_runs": sum(1 for run in runs if run.first_jewel_s is not None),
            "contained_runs": sum(1 for run in runs if run.contained),
            "detected_runs": sum(1 for run in runs
                                 if run.time_to_first_detection_s is not None),
            "benign_quarantined_median": _median([float(run.benign_hosts_quarantined)
                                                  for run in runs]),
            "seeds": [run.seed for run in runs],
            "hosts_total": max((run.hosts_total for run in runs), default=0),
            "susceptible_total": max((run.susceptible_total for run in runs), default=0)}


class _Driver:
    """One invocation: the engine, the progress output and the JSON being built."""

    def __init__(self, config: RedTeamConfig, scenario: Scenario, space: SearchSpace,
                 engine: Any, stream: TextIO) -> None:
        self.config, self.scenario, self.space = config, scenario, space
        self.engine, self.stream = engine, stream
        base_seed = scenario.spec.seed
        self.search_seeds = [base_seed + i for i in range(config.seeds)]
        self.eval_seeds = [base_seed + HELD_OUT_SEED_OFFSET + i
                           for i in range(config.eval_seeds)]
        self.confirm_seeds = self.eval_seeds[:config.confirm_seeds]
        self.data: dict[str, Any] = {
            "redteam_version": 1, "scenario": scenario.name,
            "scenario_path": str(config.scenario_path), "objective": config.objective,
            "objective_means": OBJECTIVES[config.objective], "backend": config.backend,
            "budget": config.budget, "seeds_per_trial": config.seeds,
            "search_seeds": self.search_seeds, "eval_seeds": self.eval_seeds,
            "space": space.as_dict(), "complete": False, "interrupted": False}

    def say(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    # ---- 1. search ----------------------------------------------------------------------
    def search(self) -> Any:
        optuna = _require_optuna()
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend
        from optuna.trial import TrialState

        out = self.config.out
        storage = JournalStorage(JournalFileBackend(str(out / JOURNAL)))
        sampler = optuna.samplers.TPESampler(
            seed=self.config.sampler_seed, multivariate=True, group=True,
            n_startup_trials=max(len(self.space.profiles) + 2, 8))
        study = optuna.create_study(study_name=STUDY_NAME, storage=storage, sampler=sampler,
                                    direction="maximize", load_if_exists=True)
        if not study.get_trials(deepcopy=False):
            for profile in self.space.profiles:  # the ladder as shipped comes first
                study.enqueue_trial(self.space.trial_params(self._explicit_defaults(profile)))
        for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            # cut by Ctrl-C or a crash: run it again with the same parameters
            study.tell(stale.number, state=TrialState.FAIL)
            study.enqueue_trial(stale.params)
        done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        progress = ProgressBar(self.config.budget * self.config.seeds,
                               already_done=done * self.config.seeds, stream=self.stream,
                               label="search ")
        if done:
            self.say(f"resuming: {done} of {self.config.budget} trials already in {out}")
        failures = 0
        out_root = out / "search"
        while done < self.config.budget:
            trial = study.ask()
            worm = self.space.suggest(trial)
            label = f"trial-{trial.number:04d}"
            try:
                runs = run_worms(self.engine, self.scenario, {label: worm}, self.search_seeds,
                                 out_root, backend=self.config.backend,
                                 on_outcome=lambda o: progress.advance(o.error is not None)
                                 )[label]
            except KeyboardInterrupt:
                study.tell(trial, state=TrialState.FAIL)
                study.enqueue_trial(trial.params)
                raise
            except RunError as err:
                failures += 1
                progress.total += len(self.search_seeds)  # a failed trial is tried anew
                trial.set_user_attr("error", str(err))
                study.tell(trial, state=TrialState.FAIL)
                self.say(f"\ntrial {trial.number} ({worm.describe()}) failed: {err}")
                if failures > max(3, self.config.budget // 4):
                    raise RedTeamError(f"{failures} trials failed; the last: {err}") from None
                continue
            score = trial_score(runs, self.config.objective)
            trial.set_user_attr("worm", worm.describe())
            trial.set_user_attr("runs", [run.as_dict() for run in runs])
            study.tell(trial, score)
            remove_runs(out_root, self.scenario, label)
            done += 1
            best = study.best_value
            if self.stream.isatty():
                self.stream.write("\r\033[K")
            self.say(f"trial {done}/{self.config.budget} #{trial.number}: "
                     f"{worm.describe()} -> {score:.3g} (best {best:.3g})")
            progress.draw()
        progress.draw(final=True)
        return study

    def _explicit_defaults(self, profile: str) -> WormChoice:
        return WormChoice.of(profile, {rule.name: rule.default
                                       for rule in self.space.ranges[profile]})

    def record_search(self, study: Any) -> WormChoice:
        from optuna.trial import TrialState

        trials, curve, best_so_far = [], [], None
        for trial in study.get_trials(deepcopy=False):
            entry: dict[str, Any] = {"number": trial.number, "state": trial.state.name,
                                     "params": dict(trial.params)}
            if "profile" in trial.params:
                worm = self.space.worm_from_trial_params(trial.params)
                entry["worm"] = _worm_record(worm)
            if trial.state == TrialState.COMPLETE:
                runs = [RunSummary.from_dict(r) for r in trial.user_attrs.get("runs", [])]
                entry.update({"score": trial.value, **_runs_record(runs, self.config.objective),
                              "runs": trial.user_attrs.get("runs", [])})
                best_so_far = (trial.value if best_so_far is None
                               else max(best_so_far, trial.value))
                curve.append({"trial": trial.number, "score": trial.value,
                              "profile": trial.params.get("profile"),
                              "best_so_far": best_so_far})
            elif "error" in trial.user_attrs:
                entry["error"] = trial.user_attrs["error"]
            trials.append(entry)
        self.data["search"] = {"trials": trials, "curve": curve,
                               "completed": len(curve),
                               "failed": sum(1 for t in trials if t["state"] == "FAIL")}
        if not curve:
            raise RedTeamError("no trial finished, so there is no worst-case worm to report")
        best_trial = study.best_trial
        best = self.space.worm_from_trial_params(best_trial.params)
        self.data["best"] = {"worm": _worm_record(best), "trial": best_trial.number,
                             "search_score": best_trial.value}
        return best

    # ---- 2. evaluation ------------------------------------------------------------------
    def evaluate(self, best: WormChoice) -> dict[str, WormChoice]:
        worms: dict[str, WormChoice] = {BEST: best}
        for profile in self.space.profiles:
            worms[BUILTIN_PREFIX + profile] = self.space.defaults(profile)
        worms[SCENARIO_WORM] = _scenario_worm(self.scenario)
        progress = ProgressBar(len(worms) * len(self.eval_seeds), stream=self.stream,
                               label="evaluate ")
        runs = run_worms(self.engine, self.scenario, worms, self.eval_seeds,
                         self.config.out / "evaluation", backend=self.config.backend,
                         on_outcome=lambda o: progress.advance(o.error is not None))
        progress.draw(final=True)
        rows = {label: {"worm": _worm_record(worm),
                        **_runs_record(runs[label], self.config.objective)}
                for label, worm in worms.items()}
        builtins = [label for label in worms if label.startswith(BUILTIN_PREFIX)]
        best_builtin = max(builtins, key=lambda label: (rows[label]["score"],
                                                        rows[label]["infected_median"],
                                                        rows[label]["value_median"]))
        best_median = rows[BEST]["infected_median"]
        builtin_median = rows[best_builtin]["infected_median"]
        fell: dict[str, int] = {}
        for run in runs[BEST]:
            for host in run.infected_hosts:
                fell[host] = fell.get(host, 0) + 1
        run_dirs = [cell_directory(self.config.out / "evaluation", self.scenario, BEST, seed)
                    for seed in self.eval_seeds]
        builtin_dirs = [cell_directory(self.config.out / "evaluation", self.scenario,
                                       best_builtin, seed) for seed in self.eval_seeds]
        self.data["evaluation"] = {
            "seeds": self.eval_seeds, "backend": self.config.backend, "worms": rows,
            "best_builtin": best_builtin,
            "infected_median_ratio": (best_median / builtin_median
                                      if builtin_median else None),
            "susceptible_total": rows[BEST]["susceptible_total"],
            "twice_reachable": (builtin_median is not None
                                and 2 * builtin_median <= rows[BEST]["susceptible_total"]),
            "hosts_fell": dict(sorted(fell.items(), key=lambda kv: (-kv[1], kv[0]))),
            "per_seed_objective": {label: [objective_value(run, self.config.objective)
                                           for run in runs[label]] for label in worms}}
        self.data["evidence"] = [e.as_dict() for e in detector_evidence(self.scenario,
                                                                         run_dirs)]
        self.data["evidence_best_builtin"] = [e.as_dict() for e in detector_evidence(
            self.scenario, builtin_dirs)]
        return {BEST: best, best_builtin: worms[best_builtin]}

    # ---- 3. confirmation ----------------------------------------------------------------
    def confirm(self, worms: dict[str, WormChoice]) -> None:
        from testbed.experiments import can_emulate

        backend = self.config.confirm_backend
        record: dict[str, Any] = {"backend": backend, "seeds": self.confirm_seeds,
                                  "skipped": None, "rows": {}}
        self.data["confirmation"] = record
        if not self.confirm_seeds:
            record["skipped"] = "--confirm-seeds 0"
            return
        if backend != "sim" and backend != self.config.backend and not can_emulate():
            record["skipped"] = (f"{backend} needs root and network namespaces, which this "
                                 "process lacks")
            self.say(f"confirmation on {backend} skipped: {record['skipped']}")
            return
        progress = ProgressBar(len(worms) * len(self.confirm_seeds), stream=self.stream,
                               label=f"confirm on {backend} ")
        runs = run_worms(self.engine, self.scenario, worms, self.confirm_seeds,
                         self.config.out / "confirm", backend=backend,
                         on_outcome=lambda o: progress.advance(o.error is not None))
        progress.draw(final=True)
        evaluation = self.data["evaluation"]["worms"]
        for label in worms:
            sim_infected = evaluation[label]["infected"][:len(self.confirm_seeds)]
            emulated = [run.infected_total for run in runs[label]]
            record["rows"][label] = {
                "worm": _worm_record(worms[label]),
                "sim_infected": sim_infected,
                "sim_median": _median([float(v) for v in sim_infected]),
                "emulated_infected": emulated,
                "emulated_median": _median([float(v) for v in emulated]),
                "emulated_contained_runs": sum(1 for run in runs[label] if run.contained)}
        labels = list(worms)
        best_row, builtin_row = record["rows"][labels[0]], record["rows"][labels[1]]
        sim_direction = (best_row["sim_median"] or 0) - (builtin_row["sim_median"] or 0)
        emu_direction = (best_row["emulated_median"] or 0) - (builtin_row["emulated_median"]
                                                              or 0)
        record["direction_agrees"] = (sim_direction > 0) == (emu_direction > 0)


def run_redteam(config: RedTeamConfig, *, stream: TextIO | None = None,
                engine_factory: Callable[[], Any] | None = None) -> RedTeamOutcome:
    """Run (or resume) the red team described by ``config``; write the outputs into
    ``config.out``. ``RedTeamInterrupted`` on Ctrl-C after writing what is finished."""
    from testbed.experiments import make_engine
    from testbed.redteam.outputs import write_outputs

    stream = stream if stream is not None else sys.stderr
    scenario = load_redteam_scenario(config)
    _require_optuna()
    space = discover_space(list(config.profiles) if config.profiles else None)
    _check_identity(config.out, _fingerprint(config, scenario, space), scenario,
                    config.objective)
    if engine_factory is not None:
        engine = engine_factory()
    elif config.engine == "local":
        engine = WatchdogEngine(config.cell_timeout_s)
    else:
        engine = make_engine(config.engine, address=config.ray_address)
    started = time.monotonic()
    driver: _Driver | None = None
    try:
        with engine:
            driver = _Driver(config, scenario, space, engine, stream)
            driver.say(f"red team on {scenario.name}: {config.budget} trials x "
                       f"{config.seeds} seeds on {config.backend}, objective "
                       f"{config.objective}, profiles {', '.join(space.profiles)}; "
                       f"{engine.describe()}; -> {config.out}")
            study = driver.search()
            best = driver.record_search(study)
            pair = driver.evaluate(best)
            driver.confirm(pair)
            driver.data["complete"] = True
    except KeyboardInterrupt:
        outcome = None
        if driver is not None:
            driver.data["interrupted"] = True
            outcome = _write_partial(driver, scenario, config)
        raise RedTeamInterrupted(
            f"interrupted after {format_duration(time.monotonic() - started)}: finished trials "
            f"and runs are kept in {config.out}; run the same command again to continue",
            outcome) from None
    assert driver is not None
    driver.data["wall_s"] = round(time.monotonic() - started, 1)
    paths = write_outputs(config.out, scenario, driver.data)
    return RedTeamOutcome(driver.data, paths)


def _write_partial(driver: _Driver, scenario: Scenario, config: RedTeamConfig
                   ) -> RedTeamOutcome | None:
    """On Ctrl-C: the search so far (and the worst-case scenario, if a trial finished)."""
    from testbed.redteam.outputs import write_outputs

    if "search" not in driver.data:
        try:
            optuna = _require_optuna()
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            study = optuna.load_study(study_name=STUDY_NAME, storage=JournalStorage(
                JournalFileBackend(str(config.out / JOURNAL))))
            driver.record_search(study)
        except (RedTeamError, KeyError, ValueError):
            return None
    return RedTeamOutcome(driver.data, write_outputs(config.out, scenario, driver.data))
