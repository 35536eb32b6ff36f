#!/usr/bin/env bash
# Lint and test runner behind `make test`, `make lint`, `make unit|privileged|docker`.
# Lint is ruff, mypy and lint-imports (the import contracts in pyproject.toml).
#
# All tiers run in ONE pytest invocation, so pytest's closing line is the total (CI reads it),
# with a per-tier table just above it (scripts/pytest_tier_summary.py). Lint failures do not stop
# the tests; they fail the run at the end. pytest's exit 5 ("no tests collected") is a failure.
#
# Usage: scripts/test.sh all|lint|unit|privileged|docker|browser [extra pytest args...]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
WHAT=${1:-all}; shift || true
LINT_PATHS=(testbed detectors tests benchmarks)
LINT_IMPORTS='import sys; from importlinter.cli import lint_imports_command as run; sys.exit(run())'
lint_status=0

lint() {
    local paths=() p
    for p in "${LINT_PATHS[@]}"; do [ -e "$p" ] && paths+=("$p"); done
    echo "== ruff check ${paths[*]}"
    "$PYTHON" -m ruff check "${paths[@]}" || lint_status=1
    echo "== mypy (packages from pyproject.toml)"
    "$PYTHON" -m mypy || lint_status=1
    # The import contracts of pyproject.toml [tool.importlinter] (layers, plug-in API, agent,
    # ground-truth wall): `lint-imports` run by $PYTHON, leaving no cache in the tree.
    echo "== lint-imports (contracts in pyproject.toml)"
    "$PYTHON" -c "$LINT_IMPORTS" --no-cache --no-logo || lint_status=1
    if [ "$lint_status" -eq 0 ]; then echo "== lint: ok"; else echo "== lint: FAILED"; fi
}

run_pytest() {
    echo "== pytest $*"
    PYTHONPATH="scripts${PYTHONPATH:+:$PYTHONPATH}" \
        "$PYTHON" -m pytest -p pytest_tier_summary --strict-markers "$@"
    local status=$?
    if [ "$status" -eq 5 ]; then
        echo "== pytest collected no tests: that is a failure, not a pass" >&2
        return 1
    fi
    return "$status"
}

case "$WHAT" in
    lint) lint; exit "$lint_status" ;;
    unit|privileged|docker|browser) run_pytest "tests/$WHAT" "$@"; exit $? ;;
    all)
        lint
        tiers=()
        for tier in tests/unit tests/privileged tests/docker tests/browser; do [ -d "$tier" ] && tiers+=("$tier"); done
        run_pytest "${tiers[@]}" "$@"
        test_status=$?
        failed=()
        [ "$lint_status" -eq 0 ] || failed+=("lint")
        [ "$test_status" -eq 0 ] || failed+=("tests (pytest exit $test_status)")
        if [ ${#failed[@]} -gt 0 ]; then
            echo "== make test: FAILED: ${failed[*]}" >&2
            exit 1
        fi
        ;;
    *) echo "usage: scripts/test.sh all|lint|unit|privileged|docker|browser [pytest args]" >&2; exit 2 ;;
esac
