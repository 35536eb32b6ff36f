"""`testbed validate PATH...`: check topology, scenario and profile files like a compiler would."""

from __future__ import annotations

import argparse
import json
import sys

from testbed.validate import validate_file

NAME = "validate"
HELP = "Validate topology and scenario files; exit 0 when all are valid, 1 otherwise"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors")


def run(args: argparse.Namespace) -> int:
    reports = [validate_file(path) for path in args.paths]
    if args.json:
        json.dump([{"path": r.path, "kind": r.kind, "ok": r.ok, "summary": r.summary,
                    "errors": [{"file": d.file, "line": d.line, "column": d.column,
                                "path": d.path, "message": d.message, "hint": d.hint}
                               for d in r.diagnostics]} for r in reports],
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for report in reports:
            if report.ok:
                if not args.quiet:
                    print(f"{report.path}: ok: {report.summary}")
            else:
                for diagnostic in report.diagnostics:
                    sys.stderr.write(diagnostic.format() + "\n")
        failed = sum(not r.ok for r in reports)
        errors = sum(len(r.diagnostics) for r in reports)
        if failed:
            sys.stderr.write(f"{errors} error{'s' if errors != 1 else ''} in {failed} of "
                             f"{len(reports)} file{'s' if len(reports) != 1 else ''}\n")
    return 0 if all(r.ok for r in reports) else 1
