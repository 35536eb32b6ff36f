"""Benign users, in the spirit of CMU's GHOSTS: people using services at human rates, a backup
server that contacts every host on schedule, and an IT vulnerability scanner sweeping segments.

Owns: the timelines (exponential gaps for users, fixed rounds for backup and scanner, with a
seeded random start) and their ``benign-request`` ground truth (role user/backup/scanner, outcome
ok/failed). They are the false-positive traps detectors must live with.
Must not: connect except through ``Egress``; carry anything of the worm.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random

from testbed.agent.clients import benign_request, tcp_connect_only
from testbed.agent.config import BackupJob, BenignTarget, ScannerJob, UserJob
from testbed.agent.events import EventLog
from testbed.agent.guards import Egress, RefusedDestination

__all__ = ["run_backup", "run_scanner", "run_user", "user_gaps"]

REQUEST_TIMEOUT_S = 3.0
SCAN_TIMEOUT_S = 1.0


def user_gaps(per_minute: float, rng: random.Random):  # type: ignore[no-untyped-def]
    """Seconds between a user's requests: exponential with mean 60 / per_minute (generator)."""
    while True:
        yield rng.expovariate(per_minute / 60.0)


async def _request(role: str, target: BenignTarget, egress: Egress, log: EventLog,
                   local: ipaddress.IPv4Network) -> None:
    try:
        result = await benign_request(egress, target.address, target.port, target.proto,
                                      target.service, timeout=REQUEST_TIMEOUT_S,
                                      on_link=ipaddress.IPv4Address(target.address) in local)
    except RefusedDestination:
        return
    log.emit("benign-request", role=role, target=target.address, port=target.port,
             proto=target.proto, service=target.service,
             outcome="ok" if result.ok else "failed",
             detail=None if result.ok else {"why": result.outcome})


async def run_user(job: UserJob, egress: Egress, log: EventLog, rng: random.Random,
                   local: ipaddress.IPv4Network) -> None:
    if not job.targets:
        return
    for gap in user_gaps(job.per_minute, rng):
        await asyncio.sleep(gap)
        target = job.targets[rng.randrange(len(job.targets))]
        await _request("user", target, egress, log, local)


async def run_backup(job: BackupJob, egress: Egress, log: EventLog, rng: random.Random,
                     local: ipaddress.IPv4Network) -> None:
    if not job.targets:
        return
    await asyncio.sleep(rng.uniform(0, job.every_s))
    loop = asyncio.get_running_loop()
    while True:
        round_started = loop.time()
        limit = asyncio.Semaphore(4)

        async def one(target: BenignTarget, limit: asyncio.Semaphore = limit) -> None:
            async with limit:
                await _request("backup", target, egress, log, local)

        await asyncio.gather(*(one(target) for target in job.targets))
        await asyncio.sleep(max(0.0, job.every_s - (loop.time() - round_started)))


async def run_scanner(job: ScannerJob, egress: Egress, log: EventLog, rng: random.Random,
                      local: ipaddress.IPv4Network, *, own_address: str) -> None:
    await asyncio.sleep(rng.uniform(0, job.every_s))
    loop = asyncio.get_running_loop()
    while True:
        round_started = loop.time()
        pending: set[asyncio.Task[None]] = set()
        for cidr in job.cidrs:
            network = ipaddress.IPv4Network(cidr)
            for address in network.hosts():
                if str(address) == own_address:
                    continue
                for port in job.ports:
                    while len(pending) >= 16:
                        _, pending = await asyncio.wait(pending,
                                                        return_when=asyncio.FIRST_COMPLETED)
                    pending.add(asyncio.ensure_future(
                        _scan(str(address), port, egress, log, address in local)))
                    await asyncio.sleep(1.0 / job.per_second)
        if pending:
            await asyncio.wait(pending)
        await asyncio.sleep(max(0.0, job.every_s - (loop.time() - round_started)))


async def _scan(address: str, port: int, egress: Egress, log: EventLog, on_link: bool) -> None:
    try:
        outcome = await tcp_connect_only(egress, address, port, timeout=SCAN_TIMEOUT_S,
                                         on_link=on_link)
    except RefusedDestination:
        return
    log.emit("benign-request", role="scanner", target=address, port=port, proto="tcp",
             service="scan", outcome="ok" if outcome == "ok" else "failed",
             detail=None if outcome == "ok" else {"why": outcome})
