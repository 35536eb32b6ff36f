"""The agent process: one asyncio event loop serving the host's mock services, its dormant (or
active) worm and its benign users, controlled out of band through files in the run's state dir.

Owns: sockets (only through ``Egress`` for anything outbound), timers, the control files (stop,
wake, ready), TTL, the hard probe-rate cap, and turning brain decisions into probes and probe
results into ground truth.
Must not: decide tactics (``brain``), parse protocols (``services``/``protocol``), or listen to
the emulated network for control: control is files only.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import ipaddress
import json
import os
import random
import secrets
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, cast

from testbed.agent.benign import run_backup, run_scanner, run_user
from testbed.agent.brain import Brain, Observation, Probe, WormView, arm_names, remember_peer
from testbed.agent.clients import benign_request, exchange
from testbed.agent.config import AgentConfig, ServiceConfig
from testbed.agent.control import wake_moment
from testbed.agent.events import TECHNIQUES, EventLog
from testbed.agent.guards import Egress, RateCap, RefusedDestination, classify_connect_error
from testbed.agent.neighbours import NEIGHBOUR_POLL_S, read_neighbours
from testbed.agent.protocol import (
    ExploitMessage,
    InfectionGate,
    encode_line,
    make_exploit,
    message_line,
    parse_reply,
)
from testbed.agent.services import ExploitHandler, MockService
from testbed.errors import AgentError

__all__ = ["Agent", "run_agent"]

CONTROL_POLL_S = 0.25
MAX_CONNECTIONS = 256  # concurrent inbound connections per agent
CONNECTION_IDLE_S = 10.0
CONNECTION_LIFETIME_S = 30.0
CONNECTION_MAX_BYTES = 65536


def _derive_seed(seed: int, purpose: str) -> int:
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class Agent:
    """One host's agent. ``await agent.run()`` until stopped; returns an exit status."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.started = time.monotonic()
        self.active = False
        self._wake_seen = False  # the wake file was read (its moment may still be ahead)
        self.generation = 0
        self.inherited: tuple[float, ...] = ()
        self.brain: Brain | None = None
        self.stop_reason = ""
        self._stopping: asyncio.Event | None = None
        self._context: contextvars.Context | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self._transports: list[asyncio.BaseTransport] = []
        self._connections = 0
        self._peers: OrderedDict[str, None] = OrderedDict()
        self.bound: list[dict[str, Any]] = []
        self.handler_errors = 0
        self.log: EventLog | None = None
        self._local_net = ipaddress.IPv4Network(config.segment_cidr)

    # ---- lifecycle ------------------------------------------------------------------------
    async def run(self, *, own_control: bool = True, handle_signals: bool = True) -> int:
        """Serve until stopped. A multiplexer (``testbed.agent.multiplex``) runs many agents on
        one loop: it reads the control files once for all of them (``own_control=False``, then
        it calls :meth:`poll_control`) and owns the process's signals (``handle_signals``)."""
        loop = asyncio.get_running_loop()
        # Every task of this agent runs in the context it was started in, even when something
        # outside it (a multiplexer's shared control poll) wakes it: the context says in which
        # network namespace the agent's sockets are made.
        self._context = contextvars.copy_context()
        self._stopping = asyncio.Event()
        config = self.config
        self.log = EventLog(config.events_path, config.host, config.address_book,
                            schedule=loop.call_later)
        log = self.log
        self.egress = Egress(config.cidrs, on_refused=self._refused,
                             source_address=config.address if config.bind_source else None)
        gate = InfectionGate(run=config.run, secret=config.secret, own_address=config.address,
                             patched=config.patched)
        self.exploits = ExploitHandler(gate, log, self._on_accept)
        seed_bytes = str(config.seed).encode()
        for signal_number in (signal.SIGTERM, signal.SIGINT) if handle_signals else ():
            with suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal_number, self.stop, "signal")
        try:
            for service_config in config.services:
                await self._listen(MockService(service_config, self.exploits, seed_bytes))
            self._write_ready()
            if own_control:
                self._spawn(self._control())
            self._start_benign()
            if config.worm.patient_zero and config.worm.wake_after_s is not None:
                loop.call_later(config.worm.wake_after_s, self.wake, "patient-zero")
            await self._stopping.wait()
        finally:
            await self._shutdown()
        return 0

    def stop(self, reason: str) -> None:
        if self._stopping is not None and not self._stopping.is_set():
            self.stop_reason = reason
            self._stopping.set()

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        for transport in self._transports:
            transport.close()
        tasks = [task for task in self._tasks if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        with suppress(OSError):
            self.config.ready_path.unlink()
        if self.log is not None:
            self.log.emit("stop", detail={"reason": self.stop_reason or "error",
                                          "active": self.active,
                                          "probes": self.brain.probes_planned if self.brain
                                          else 0})
            self.log.close()

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine, context=self._context)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            print(f"testbed agent {self.config.host}: task failed: {error!r}", file=sys.stderr)

    async def _control(self) -> None:
        """Out-of-band control: stop file, wake file, TTL."""
        config = self.config
        while not self.poll_control(time.monotonic(), stop_file=config.stop_path.exists(),
                                    wake_file=lambda: config.wake_path.exists()):
            await asyncio.sleep(CONTROL_POLL_S)

    def poll_control(self, now: float, *, stop_file: bool,
                     wake_file: Callable[[], bool]) -> bool:
        """One look at the out-of-band controls: the run's stop file, the TTL, this host's wake
        file (``wake_file()``, asked only while dormant); True once the agent stops."""
        if stop_file:
            self.stop("stop-file")
            return True
        if now >= self.started + self.config.ttl_s:
            self.stop("ttl")
            return True
        if not self.active and not self._wake_seen and wake_file():
            self._wake_seen = True
            self._wake_at(wake_moment(self.config.wake_path), now)
        return False

    def _wake_at(self, moment: float | None, now: float) -> None:
        """Wake at the moment the wake file names (the loop's clock is ``time.monotonic()``), so
        patient zero wakes when the runner said, whatever the phase of the control poll."""
        if moment is None or moment <= now:
            self.wake("wake-file")
            return
        asyncio.get_running_loop().call_at(moment, self.wake, "wake-file",
                                           context=self._context)

    def _write_ready(self) -> None:
        path = self.config.ready_path
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name("ready.tmp")
        temporary.write_text(json.dumps({"pid": os.getpid(), "host": self.config.host,
                                         "mono": time.monotonic(), "services": self.bound}))
        os.replace(temporary, path)

    # ---- services -------------------------------------------------------------------------
    async def _listen(self, service: MockService) -> None:
        config = service.config
        loop = asyncio.get_running_loop()
        address = self.config.listen_address
        try:
            if config.proto == "tcp":
                server = await asyncio.start_server(
                    lambda r, w: self._serve(service, r, w), address, config.port,
                    reuse_address=True, backlog=128, limit=8192)
                self._servers.append(server)
                port = server.sockets[0].getsockname()[1]
            else:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpService(self, service), local_addr=(address, config.port))
                self._transports.append(transport)
                port = transport.get_extra_info("sockname")[1]
        except OSError as err:
            raise AgentError(f"{self.config.host}: cannot listen on {address}:{config.port}/"
                             f"{config.proto} for {config.name}: {err.strerror}") from None
        self.bound.append({"name": config.name, "port": port, "proto": config.proto})
        assert self.log is not None
        self.log.emit("listen", service=config.name, port=port, proto=config.proto,
                      vuln=",".join(config.vulns) or None)

    async def _serve(self, service: MockService, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        if self._connections >= MAX_CONNECTIONS:
            writer.close()
            return
        self._connections += 1
        try:
            peer = str(writer.get_extra_info("peername")[0])
            self.note_peer(peer)
            connection = service.connection(peer)
            greeting = connection.greeting()
            if greeting:
                writer.write(greeting)
            deadline = time.monotonic() + CONNECTION_LIFETIME_S
            total = 0
            while True:
                remaining = min(CONNECTION_IDLE_S, deadline - time.monotonic())
                if remaining <= 0:
                    break
                data = await asyncio.wait_for(reader.read(4096), remaining)
                if not data:
                    break
                total += len(data)
                reply, close = connection.receive(data)
                if reply:
                    writer.write(reply)
                    await asyncio.wait_for(writer.drain(), CONNECTION_IDLE_S)
                if close or total > CONNECTION_MAX_BYTES:
                    break
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except Exception as error:  # a mock must never take the agent down; count and go on
            self.handler_errors += 1
            if self.handler_errors <= 3:
                print(f"testbed agent {self.config.host}: {service.config.name} handler error: "
                      f"{error!r}", file=sys.stderr)
        finally:
            self._connections -= 1
            writer.close()

    def note_peer(self, peer: str) -> None:
        """Remember a host that talked to us: the worm's hit list ("peers it has seen")."""
        if peer == self.config.address or not self.egress.allows(peer):
            return
        if remember_peer(self._peers, peer) and self.brain is not None:
            self.brain.see_peer(peer)

    # ---- infection ------------------------------------------------------------------------
    def _on_accept(self, message: ExploitMessage, service: ServiceConfig, peer: str,
                   encoding: str) -> str:
        if self.active:
            return "already"
        arms = arm_names(self._view().arsenal)
        weights = (dict(zip(arms, message.weights, strict=True))
                   if len(message.weights) == len(arms) else {})
        assert self.log is not None
        self.log.emit("infection", technique=TECHNIQUES["tool-transfer"], source=peer,
                      parent=message.parent, vuln=message.vuln, service=service.name,
                      port=service.port, proto=service.proto, encoding=encoding,
                      generation=message.generation + 1, weights=weights or None)
        self.wake("infection", generation=message.generation + 1,
                  inherited=message.weights if weights else ())
        return "infected"

    def wake(self, reason: str, *, generation: int = 0, inherited: tuple[float, ...] = ()) -> None:
        if self.active or (self._stopping is not None and self._stopping.is_set()):
            return
        self.active = True
        self.generation = generation
        self.inherited = inherited
        assert self.log is not None
        self.log.emit("wake", generation=generation,
                      detail={"reason": reason, "profile": self.config.worm.profile})
        self._spawn(self._worm())

    def _view(self) -> WormView:
        return WormView.from_config(self.config)

    # ---- the worm -------------------------------------------------------------------------
    async def _worm(self) -> None:
        config = self.config
        worm = config.worm
        brain = Brain(self._view(), worm.profile, worm.params,
                      seed=_derive_seed(config.seed, "worm"), start=time.monotonic(),
                      inherited=self.inherited)
        self.brain = brain
        for peer in self._peers:
            brain.see_peer(peer)
        cap = RateCap(worm.max_probe_rate, burst=max(1.0, worm.max_probe_rate / 5))
        in_flight = asyncio.Semaphore(worm.max_in_flight)
        next_look = 0.0  # the host's ARP table, for brains that read it (recon, planner, ...)
        while True:
            if brain.reads_neighbours and time.monotonic() >= next_look:
                for neighbour in read_neighbours():
                    brain.see_neighbour(neighbour)
                next_look = time.monotonic() + NEIGHBOUR_POLL_S
            plan = brain.plan(time.monotonic())
            for probe in plan.probes:
                while (delay := cap.delay(time.monotonic())) > 0:
                    await asyncio.sleep(delay)
                await in_flight.acquire()
                task = self._spawn(self._probe(brain, probe))
                task.add_done_callback(lambda _: in_flight.release())
            wake_at = min(plan.wake_at, next_look) if brain.reads_neighbours else plan.wake_at
            await asyncio.sleep(max(0.0, wake_at - time.monotonic()))

    async def _probe(self, brain: Brain, probe: Probe) -> None:
        config = self.config
        worm = config.worm
        on_link = ipaddress.IPv4Address(probe.target) in self._local_net
        started = time.monotonic()
        already = False
        connected = False
        try:
            if probe.vuln is None:
                result = await benign_request(
                    self.egress, probe.target, probe.port, probe.proto, probe.service,
                    timeout=worm.connect_timeout_s + worm.reply_timeout_s, on_link=on_link)
                outcome = {"failed": "not-vulnerable"}.get(result.outcome, result.outcome)
                connected = outcome in ("ok", "not-vulnerable")
            else:
                message = make_exploit(
                    secret=config.secret, run=config.run, vuln=probe.vuln,
                    source=config.address, target=probe.target, nonce=secrets.token_hex(16),
                    issued_ms=int(time.time() * 1000), generation=self.generation,
                    parent=config.host,
                    weights=brain.weights() if worm.profile == "adaptive" else ())
                line = encode_line(message_line(message), probe.encoding, os.urandom(4))
                status, connected = await self._deliver(probe, line, started, on_link)
                already = status == "already"
                outcome = "infected" if already else status
        except RefusedDestination:
            return  # logged by the guard; the brain never proposes such targets
        observed = "already" if already else outcome
        technique = (TECHNIQUES["valid-credentials"] if probe.target in config.trusts and
                     probe.tactic in ("hitlist", "interleave") else
                     TECHNIQUES["exploit"] if connected and probe.vuln else TECHNIQUES["scan"])
        assert self.log is not None
        self.log.emit("probe", technique=technique, target=probe.target, port=probe.port,
                      proto=probe.proto, service=probe.service, vuln=probe.vuln,
                      tactic=probe.tactic, encoding=probe.encoding, outcome=outcome,
                      generation=self.generation, start_mono=round(started, 6),
                      detail={"already": True} if already else None)
        signals = brain.observe(Observation(probe, observed, time.monotonic()))
        for kind in signals:
            self.log.emit("defence-signal", signal=kind, target=probe.target, port=probe.port,
                          proto=probe.proto, tactic=probe.tactic,
                          detail={"rate": round(brain.current_rate, 4),
                                  "encoding": brain.encoding})

    async def _deliver(self, probe: Probe, line: bytes, started: float, on_link: bool
                       ) -> tuple[str, bool]:
        """Send an exploit line; (outcome or reply status, whether a connection was made)."""
        worm = self.config.worm
        if probe.proto == "udp":
            try:
                reply = await self.egress.udp_exchange(probe.target, probe.port, line,
                                                       worm.connect_timeout_s)
            except OSError as err:
                return classify_connect_error(err, time.monotonic() - started, on_link), False
            if reply is None:
                return "timeout", False
            return parse_reply(reply) or "not-vulnerable", True
        try:
            reader, writer = await self.egress.open_tcp(probe.target, probe.port,
                                                        worm.connect_timeout_s)
        except (OSError, TimeoutError) as err:
            return classify_connect_error(err, time.monotonic() - started, on_link), False
        received = await exchange(reader, writer, line, parse_reply,
                                  deadline=time.monotonic() + worm.reply_timeout_s)
        return parse_reply(received) or "not-vulnerable", True

    # ---- benign users ---------------------------------------------------------------------
    def _start_benign(self) -> None:
        config = self.config
        rng = random.Random(_derive_seed(config.seed, "benign"))
        assert self.log is not None
        for index, job in enumerate(config.users):
            user_rng = random.Random(rng.getrandbits(64) + index)
            self._spawn(run_user(job, self.egress, self.log, user_rng,
                                 self._local_net))
        if config.backup is not None:
            self._spawn(run_backup(config.backup, self.egress, self.log,
                                   random.Random(rng.getrandbits(64)), self._local_net))
        if config.scanner is not None:
            self._spawn(run_scanner(config.scanner, self.egress, self.log,
                                    random.Random(rng.getrandbits(64)), self._local_net,
                                    own_address=config.address))

    def _refused(self, address: str, port: int, proto: str) -> None:
        if self.log is not None:
            self.log.emit("refused-destination", target=address, port=port, proto=proto)


class _UdpService(asyncio.DatagramProtocol):
    def __init__(self, agent: Agent, service: MockService) -> None:
        self.agent = agent
        self.service = service
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # the selector loop's datagram transport does not subclass DatagramTransport in 3.11
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self.agent.note_peer(addr[0])
            reply = self.service.datagram(data, addr[0])
        except Exception as error:  # never let a datagram take the agent down
            self.agent.handler_errors += 1
            print(f"testbed agent: udp handler error: {error!r}", file=sys.stderr)
            return
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


def run_agent(config_path: str | Path) -> int:
    """Load a config and run its agent until stopped. Raises AgentError on a bad config."""
    from testbed.agent.config import load_config

    config = load_config(config_path)
    from testbed.agent.brain import resolve_params

    resolve_params(config.worm.profile, config.worm.params)  # fail fast on a bad profile
    return asyncio.run(Agent(config).run())
