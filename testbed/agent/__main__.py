"""``python3 -m testbed.agent --config PATH``: run one host's agent until stopped.
``python3 -m testbed.agent --group PATH``: run many hosts' agents on one event loop, each host's
sockets inside its own network namespace (``testbed.agent.multiplex``; needs root).

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
                                                 "dormant mock worm, benign users), or a group "
                                                 "of hosts' agents in one process.")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", help="the host's agent config (JSON)")
    which.add_argument("--group", help="an agent group config (JSON): many hosts, one process")
    args = parser.parse_args(argv)
    if args.group is not None:
        from testbed.agent.multiplex import run_group

        try:
            return run_group(args.group)  # 1 when an agent failed (it says which, on stderr)
        except AgentError as err:  # raised only before any socket: the config or a profile
            print(f"testbed agent: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 0
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
