"""`testbed ui`: serve the dashboard of every run under a folder (default runs/).

Prints the URL carrying the session token (as Jupyter does) and serves until Ctrl-C. Listens on
127.0.0.1 unless --host says otherwise (then it warns: anyone who can reach the address and has
the token can act on live runs).
"""

from __future__ import annotations

import argparse
import sys
import threading
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from testbed.ui.server import DashboardServer

NAME = "ui"
HELP = "Serve the live rehearsal dashboard: watch, act as the defender, replay, exercises"
DEFAULT_PORT = 8765


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=Path, default=Path("runs"), metavar="DIR",
                        help="folder whose run directories are served (default: runs/)")
    add_server_options(parser, prefix="")


def add_server_options(parser: argparse.ArgumentParser, *, prefix: str) -> None:
    """--port/--host/--no-browser (``prefix`` "ui-" for `testbed run --ui`)."""
    parser.add_argument(f"--{prefix}port", type=int, default=DEFAULT_PORT, metavar="N",
                        help=f"port to listen on (default {DEFAULT_PORT}; 0: any free port)")
    parser.add_argument(f"--{prefix}host", default="127.0.0.1", metavar="ADDR",
                        help="address to listen on (default 127.0.0.1, this machine only)")
    parser.add_argument("--no-browser", action="store_true",
                        help="do not open a web browser (print the URL only)")


def start_dashboard(runs_dir: Path, *, host: str, port: int, open_browser: bool,
                    path: str = "/", stream: TextIO | None = None) -> DashboardServer:
    """Start the dashboard server (a context manager, entered), print its URL, warn when it is
    not on loopback, and open a browser if asked. The caller exits it."""
    from testbed.ui.server import DashboardServer, is_loopback

    server = DashboardServer(runs_dir, host=host, port=port)
    server.__enter__()
    if not is_loopback(host):
        sys.stderr.write(f"testbed ui: warning: listening on {host}, not only on this machine: "
                         "whoever reaches it with the token can act on live runs\n")
    url = server.url(path)
    print(f"Dashboard: {url}", file=stream or sys.stdout, flush=True)
    if open_browser:
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
    return server


def run(args: argparse.Namespace) -> int:
    server = start_dashboard(args.runs, host=args.host, port=args.port,
                             open_browser=not args.no_browser)
    print("Serving until Ctrl-C.", flush=True)
    try:
        threading.Event().wait()
    finally:
        server.__exit__(None, None, None)
    return 0  # pragma: no cover - Ctrl-C leaves through the finally
