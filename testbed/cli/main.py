"""Entry point of the ``testbed`` command: parse, dispatch, and map errors to exit codes.

Exit codes: 0 success; 1 the answer is "no" or the input is invalid (validation errors, reach
mismatches, failed run); 2 usage errors and unknown names; 3 the system refused (backend, missing
tool, privileges); 130 interrupted by Ctrl-C (after cleaning up).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from testbed import __version__
from testbed.errors import BackendError, InputError, RegistryError, TestbedError

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: tuple[str, ...] = (
    "validate", "schema", "plan", "profiles", "detectors",
    "up", "status", "exec_cmd", "down", "reach",
    "detect", "run", "bench", "sweep", "redteam", "quarantine", "release", "block", "image", "ui",
    "graph", "dataset", "generate",
)
"""Subcommand modules in ``testbed.cli.commands``, in the order ``--help`` lists them."""


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"testbed.cli.commands.{name}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or with ``only`` one subcommand configured (imports only that module;
    the others are listed but not loaded, so that ``testbed validate`` starts fast)."""
    parser = argparse.ArgumentParser(
        prog="testbed",
        description="Adaptive-worm cyber-defence testbed: YAML topologies become emulated "
                    "networks where a safe mock worm spreads and your defences try to stop it.")
    parser.add_argument("--version", action="version", version=f"testbed {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        command = name.removesuffix("_cmd")
        if only is not None and command != only:
            subparsers.add_parser(command)
            continue
        module = _load(name)
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.configure(sub)
        sub.set_defaults(handler=module.run)
    return parser


def _print_error(message: str) -> None:
    sys.stderr.write(message.rstrip() + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in arguments if not a.startswith("-")), None)
    known = {name.removesuffix("_cmd") for name in COMMANDS}
    wants_overview = first is None or first not in known
    parser = build_parser(None if wants_overview else first)
    args = parser.parse_args(arguments)
    try:
        return int(args.handler(args) or 0)
    except InputError as err:
        _print_error(str(err))
        count = len(err.diagnostics)
        _print_error(f"{count} error{'s' if count != 1 else ''}")
        return 1
    except RegistryError as err:
        _print_error(f"testbed: error: {err}")
        return 2
    except BackendError as err:
        _print_error(f"testbed: error: {err}")
        return 3
    except TestbedError as err:
        _print_error(f"testbed: error: {err}")
        return 1
    except KeyboardInterrupt:
        _print_error("testbed: interrupted")
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
