"""`testbed exec RUN HOST -- CMD...`: run a command inside a host (or router) of a run.

Owns: the ``exec`` subcommand. The command runs where the backend says a host's programs run
(``Deployment.exec_argv``: nsenter into a netns node, ``docker exec`` into a container, so it
sees the container's own processes and hostname). Output streams through; the exit status is
the command's.
"""

from __future__ import annotations

import argparse
import signal
import subprocess

from testbed.errors import BackendError

NAME = "exec"
HELP = "Run a command inside a host or router of a deployed run; exits with its status"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_name", metavar="RUN")
    parser.add_argument("host", metavar="HOST", help="host or router name")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD...",
                        help="the command and its arguments, after --")
    parser.add_argument("--timeout", type=float, default=None,
                        help="kill the command after this many seconds")


def run(args: argparse.Namespace) -> int:
    from testbed.cli.commands.up import attach

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise BackendError("no command given (hint: testbed exec RUN HOST -- ip addr)")
    argv = attach(args.run_name).exec_argv(args.host, command)
    # Ctrl-C reaches the command (same process group); we wait for it to finish.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        process = subprocess.Popen(argv)
        try:
            return process.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise BackendError(f"command timed out after {args.timeout} s") from None
    except FileNotFoundError as err:
        raise BackendError(f"cannot start {err.filename}") from None
    finally:
        signal.signal(signal.SIGINT, previous)
