"""`testbed generate flat|enterprise|campus --hosts N [--seed S] [--out FILE]`: write a valid
topology of any size (up to 1,048,576 hosts) for experiments, on stdout or into FILE.

Hosts are stamped by groups, so even a million hosts is a short file. Large ones are for the
simulation backend (``testbed run --backend sim``); the emulation backends say before deploying
how many hosts this machine holds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from testbed.model.generate import GENERATORS, PATIENT_ZERO, generate_topology, topology_yaml
from testbed.model.load_topology import MAX_HOSTS

NAME = "generate"
HELP = "Write a topology of any size (flat, enterprise, campus) for experiments"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=sorted(GENERATORS),
                        help="flat: one segment; enterprise: departments behind a core "
                             "firewall, servers, a DMZ; campus: buildings behind routers, a "
                             "data centre")
    parser.add_argument("--hosts", type=int, required=True, metavar="N",
                        help=f"how many hosts, exactly (up to {MAX_HOSTS})")
    parser.add_argument("--seed", type=int, default=1, metavar="S",
                        help="draws which share of each group is vulnerable and how hosts "
                             "divide among departments or buildings (default 1)")
    parser.add_argument("--vulnerable", type=float, default=0.1, metavar="SHARE",
                        help="share of workstations carrying MOCK-SMB-1 (default 0.1)")
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="write the topology here (default: stdout)")


def run(args: argparse.Namespace) -> int:
    document = generate_topology(args.kind, args.hosts, seed=args.seed,
                                 vulnerable=args.vulnerable)
    command = (f"testbed generate {args.kind} --hosts {args.hosts} --seed {args.seed} "
               f"--vulnerable {args.vulnerable:g}")  # the same document again, wherever it goes
    text = topology_yaml(document, command=command)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"{args.out}: {document['name']}, {args.hosts} hosts, {len(document['segments'])} "
          f"segment{'s' if len(document['segments']) != 1 else ''}; patient zero: "
          f"{PATIENT_ZERO}", file=sys.stderr)
    return 0
