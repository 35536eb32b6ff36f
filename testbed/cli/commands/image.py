"""`testbed image`: build or inspect the Docker image hosts run in.

``testbed image build`` builds offline by default (a debootstrap'ed Debian imported as the base:
no registry needed); ``--dockerfile`` builds on a slim Python image from a registry instead.
``--if-missing`` makes it a fast no-op when the image is current (``make install`` uses it).
``testbed image status`` says whether the image exists and is current.
"""

from __future__ import annotations

import argparse
import json
import sys

NAME = "image"
HELP = "Build or inspect the Docker image hosts run in"


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="image_action", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="build testbed-host:latest",
                               description="Build the image every docker-backend host runs in.")
    mode = build.add_mutually_exclusive_group()
    mode.add_argument("--offline", dest="offline", action="store_true", default=True,
                      help="base on a debootstrap'ed Debian, no registry needed (default)")
    mode.add_argument("--dockerfile", dest="offline", action="store_false",
                      help="base on python:3.11-slim-bookworm from a registry")
    build.add_argument("--if-missing", action="store_true",
                       help="do nothing when a current image exists")
    build.add_argument("--rebuild-base", action="store_true",
                       help="debootstrap the offline base again instead of using the cache")
    build.add_argument("--json", action="store_true", help="print the result as JSON")
    status = actions.add_parser("status", help="is the image there and current?")
    status.add_argument("--json", action="store_true", help="print the status as JSON")


def _say(message: str) -> None:
    sys.stderr.write(f"image: {message}\n")
    sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    from testbed.image import build_image, connect, image_status

    client = connect()
    if args.image_action == "status":
        status = image_status(client)
        if args.json:
            print(json.dumps(status.to_dict()))
        elif not status.present:
            print(f"{status.name}: missing (build it: testbed image build)")
        else:
            state = "current" if status.current else "outdated (rebuild: testbed image build)"
            print(f"{status.name}: {state}, {status.id}, {status.size_mb} MB, "
                  f"built {status.build or 'unknown'}")
        return 0 if status.current else 1
    result = build_image(client, offline=args.offline, if_missing=args.if_missing,
                         rebuild_base=args.rebuild_base, say=_say)
    if args.json:
        print(json.dumps(result.to_dict()))
    elif result.built:
        print(f"built {result.image} ({result.mode}) in {result.seconds:.1f} s")
    else:
        print(f"{result.image} is current")
    return 0
