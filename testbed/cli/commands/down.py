"""`testbed down RUN... | --all`: remove runs, from their ledgers, even if their deployer died.

Owns: the ``down`` subcommand. Only runs recorded under the state root
(``$TESTBED_STATE_DIR`` or /run/testbed) are touched; nothing else on the machine. A run whose
``testbed run`` died (``kill -9``) is also salvaged: its ground truth, alerts and actions go to
its output folder, scored as an interrupted run (``testbed.runner.salvage``), and ``down`` says
where.
"""

from __future__ import annotations

import argparse
import json
import sys

from testbed.backends import BACKENDS, get_backend
from testbed.backends.ledger import Ledger, list_ledgers
from testbed.errors import BackendError, TestbedError

NAME = "down"
HELP = "Tear down runs (RUN... or --all): remove every namespace, link, rule and process"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="*", metavar="RUN")
    parser.add_argument("--all", action="store_true", help="every run on this machine")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    if args.all and args.runs:
        raise BackendError("give run names or --all, not both")
    if not args.all and not args.runs:
        raise BackendError("which run? (hint: testbed down RUN, or testbed down --all; "
                           "testbed status lists them)")
    from testbed.runner.salvage import plan_salvage  # scorer and report: only when needed

    names = [ledger.run for ledger in list_ledgers()] if args.all else list(args.runs)
    # Runs a backend still finds without a ledger (docker containers after /run was wiped).
    strays = _runs_without_ledger(set(names)) if args.all else {}
    names += sorted(strays)
    removed: list[str] = []
    failed: dict[str, str] = {}
    salvaged: dict[str, str] = {}  # run -> what its salvage says
    for name in names:
        backend: str | None = strays.get(name)
        salvage = None
        try:
            backend = backend or Ledger.load(name).backend
            salvage = plan_salvage(name, backend)
            get_backend(backend).destroy(name)
            removed.append(name)
        except (ImportError, TestbedError) as err:
            if not args.all and len(names) == 1 and salvage is None:
                raise
            failed[name] = str(err)
        if salvage is not None:  # also after a failed destroy: the records are kept safe
            try:
                message = salvage.finish()
            except (TestbedError, OSError) as err:
                failed[name] = "; ".join(filter(None, [failed.get(name),
                                                       f"salvaging its records failed: {err}"]))
            else:
                if message:
                    salvaged[name] = message
    if args.json:
        json.dump({"removed": removed, "failed": failed, "salvaged": salvaged}, sys.stdout,
                  indent=2)
        sys.stdout.write("\n")
    else:
        for name in names:
            if name in removed:
                print(f"removed run {name!r}")
            if name in salvaged:
                print(salvaged[name])
        if args.all and not names:
            print("no runs to remove")
        for name, error in failed.items():
            sys.stderr.write(f"testbed: error: run {name!r}: {error}\n")
    return 3 if failed else 0


def _runs_without_ledger(known: set[str]) -> dict[str, str]:
    """Run name -> backend, for runs a backend reports that have no ledger here."""
    found: dict[str, str] = {}
    for backend_name in BACKENDS.names():
        try:
            infos = get_backend(backend_name).runs()
        except (ImportError, TestbedError):
            continue  # e.g. no Docker engine on this machine: nothing of it to remove
        found.update({info.name: info.backend for info in infos if info.name not in known})
    return found
