"""``python3 -m testbed.agent --config PATH``: run one host's agent until stopped.

Exit status: 0 after a stop (stop file, TTL, SIGTERM/SIGINT), 2 for a bad config or profile,
1 when a service cannot listen.
"""

from __future__ import annotations

import argparse
import sys

from testbed.errors import AgentError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m testbed.agent",
                                     description="Run one host's testbed agent (mock services, "
                                                 "dormant mock worm, benign users).")
    parser.add_argument("--config", required=True, help="the host's agent config (JSON)")
    args = parser.parse_args(argv)
    from testbed.agent.config import load_config
    from testbed.agent.runtime import run_agent

    try:
        load_config(args.config)
    except AgentError as err:
        print(f"testbed agent: {err}", file=sys.stderr)
        return 2
    try:
        return run_agent(args.config)
    except AgentError as err:
        print(f"testbed agent: {err}", file=sys.stderr)
        return 2 if "profile" in str(err) else 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
