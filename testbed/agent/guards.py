"""Guards on everything an agent sends: the one outbound choke-point, the rate cap, the clock.

Owns: :class:`Egress`, through which every outbound connection of the agent (worm probes, benign
requests, interleaved connections) is made. It refuses any destination outside the run's topology
CIDRs *before* a socket exists, and logs the refusal; :class:`RateCap`, a token bucket.
Must not: open a socket anywhere else. ``tests/unit/test_agent_guards.py`` proves a refused
destination creates no socket.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import time
from collections.abc import Callable, Iterable

from testbed.errors import AgentError

__all__ = ["Egress", "RateCap", "RefusedDestination", "classify_connect_error"]


class RefusedDestination(AgentError):
    """A destination outside the run's topology: no socket was made."""


class Egress:
    """The only way out of an agent. ``on_refused(address, port, proto)`` logs refusals."""

    def __init__(self, cidrs: Iterable[str], *,
                 on_refused: Callable[[str, int, str], None] | None = None,
                 source_address: str | None = None) -> None:
        self.source_address = source_address  # bind outbound sockets to it (tests on loopback)
        self.networks = tuple(ipaddress.IPv4Network(c) for c in cidrs)
        if not self.networks:
            raise AgentError("the egress guard needs at least one topology CIDR")
        self._on_refused = on_refused
        self.refused = 0

    def allows(self, address: str) -> bool:
        try:
            parsed = ipaddress.IPv4Address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self.networks)

    def check(self, address: str, port: int, proto: str) -> str:
        """``address`` if inside the topology; else log it and raise RefusedDestination."""
        if self.allows(address):
            return address
        self.refused += 1
        if self._on_refused is not None:
            self._on_refused(address, port, proto)
        raise RefusedDestination(f"destination {address}:{port}/{proto} is outside the topology")

    async def open_tcp(self, address: str, port: int, timeout: float
                       ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect (guarded). Raises RefusedDestination, TimeoutError or OSError."""
        self.check(address, port, "tcp")
        local = (self.source_address, 0) if self.source_address else None
        return await asyncio.wait_for(
            asyncio.open_connection(address, port, limit=8192, local_addr=local), timeout)

    async def udp_exchange(self, address: str, port: int, payload: bytes, timeout: float
                           ) -> bytes | None:
        """Send one datagram (guarded) and wait for one reply; None on timeout."""
        self.check(address, port, "udp")
        loop = asyncio.get_running_loop()
        received: asyncio.Future[bytes] = loop.create_future()

        class _Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                if not received.done():
                    received.set_result(data[:4096])

            def error_received(self, exc: Exception) -> None:
                if not received.done():
                    received.set_exception(exc)

        local = (self.source_address, 0) if self.source_address else None
        transport, _ = await loop.create_datagram_endpoint(
            _Protocol, remote_addr=(address, port), local_addr=local)
        try:
            transport.sendto(payload)
            return await asyncio.wait_for(received, timeout)
        except TimeoutError:
            return None
        finally:
            transport.close()


def classify_connect_error(error: BaseException, elapsed: float, on_link: bool) -> str:
    """A probe outcome (testbed.records.PROBE_OUTCOMES) for a failed connect.

    Linux reports an ICMP administratively-prohibited answer as EHOSTUNREACH, the same errno as a
    failed ARP resolution. A router's ICMP comes back quickly and only for off-link targets; a
    failed ARP takes about 3 s. Local netfilter rejects give EPERM/EACCES.
    """
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, OSError):
        if error.errno in (errno.EACCES, errno.EPERM):
            return "prohibited"
        if error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "prohibited" if (elapsed < 1.0 and not on_link) else "unreachable"
        if error.errno == errno.ECONNREFUSED:
            return "refused"
    return "unreachable"


class RateCap:
    """Token bucket: at most ``rate`` events a second, bursts of ``burst``. Sans-IO."""

    def __init__(self, rate: float, burst: float = 1.0, *, now: float | None = None) -> None:
        if rate <= 0:
            raise AgentError("a rate cap must be positive")
        self.rate, self.burst = rate, max(1.0, burst)
        self._tokens = self.burst
        self._last = time.monotonic() if now is None else now

    def delay(self, now: float) -> float:
        """Seconds to wait before the next event; takes the token when 0 is returned."""
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate
