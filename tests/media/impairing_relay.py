"""A UDP relay on loopback that impairs RTP like a bad network: random loss and jitter.

It owns an even RTP/RTCP port pair. Whatever arrives from the "client" (the first
address that is not the target) goes to the target; whatever arrives from the target
goes back to the client. RTP is dropped with probability `loss_percent` and delayed by
a uniform random 0..`jitter_ms` (seeded RNG, so a run is reproducible); RTCP passes
untouched unless `impair_rtcp`. A test double (network impairment where netem needs privileges): used by the media and call-plane tests.

It also records what it injected, so a test can compare a receiver's report with the
truth: the exact loss, and the RFC 3550 jitter a perfect receiver would compute from
the relay's own delivery schedule (see `injected_jitter_ms`).
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections.abc import Callable
from typing import Literal

import msgspec

from theo_ray.media.rtp_sockets import bind_even_pair
from theo_ray.media.settings import MediaSettings

Leg = Literal["to_target", "to_client"]


class LegStats(msgspec.Struct):
    received: int = 0
    forwarded: int = 0
    dropped: int = 0

    @property
    def loss_fraction(self) -> float:
        return self.dropped / self.received if self.received else 0.0


class _Port(asyncio.DatagramProtocol):
    def __init__(self, relay: ImpairingRelay, rtcp: bool) -> None:
        self.relay = relay
        self.rtcp = rtcp
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.relay._on_datagram(self, data, addr)

    def error_received(self, exc: Exception) -> None:
        return None  # a side that went away: keep relaying the other


class ImpairingRelay:
    def __init__(
        self,
        target: tuple[str, int],
        loss_percent: float = 0.0,
        jitter_ms: float = 0.0,
        seed: int = 0,
        clock_rate: int = 8000,
        impair_rtcp: bool = False,
        host: str = "127.0.0.1",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.target_rtcp = (target[0], target[1] + 1)
        self.loss = loss_percent / 100.0
        self.jitter = jitter_ms / 1000.0
        self.clock_rate = clock_rate
        self.impair_rtcp = impair_rtcp
        self._rng = random.Random(seed)
        self._clock = clock
        self._rtp_sock, self._rtcp_sock = bind_even_pair(host, 0, MediaSettings())
        self.local_address: tuple[str, int] = self._rtp_sock.getsockname()[:2]
        self._client: tuple[str, int] | None = None
        self._client_rtcp: tuple[str, int] | None = None
        self._rtp: _Port | None = None
        self._rtcp: _Port | None = None
        self.stats: dict[Leg, LegStats] = {"to_target": LegStats(), "to_client": LegStats()}
        # Per leg: (scheduled delivery time, RTP timestamp) of every forwarded RTP packet.
        self._schedule: dict[Leg, list[tuple[float, int]]] = {"to_target": [], "to_client": []}
        self._pending: set[asyncio.TimerHandle] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        _, self._rtp = await loop.create_datagram_endpoint(lambda: _Port(self, False), sock=self._rtp_sock)
        _, self._rtcp = await loop.create_datagram_endpoint(lambda: _Port(self, True), sock=self._rtcp_sock)

    async def stop(self) -> None:
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        for port in (self._rtp, self._rtcp):
            if port is not None and port.transport is not None:
                port.transport.close()

    def _on_datagram(self, port: _Port, data: bytes, addr: tuple) -> None:
        addr = addr[:2]
        target = self.target_rtcp if port.rtcp else self.target
        if addr == target:
            leg: Leg = "to_client"
            dest = self._client_rtcp if port.rtcp else self._client
            if dest is None:
                return  # nobody to send it to yet
        else:
            leg = "to_target"
            if port.rtcp:
                self._client_rtcp = addr
            else:
                self._client = addr
            dest = target
        transport = port.transport
        assert transport is not None
        if port.rtcp and not self.impair_rtcp:
            transport.sendto(data, dest)
            return
        stats = self.stats[leg]
        stats.received += 1
        if self.loss and self._rng.random() < self.loss:
            stats.dropped += 1
            return
        stats.forwarded += 1
        delay = self._rng.uniform(0.0, self.jitter) if self.jitter else 0.0
        if len(data) >= 12 and not port.rtcp:
            self._schedule[leg].append((self._clock() + delay, struct.unpack_from("!I", data, 4)[0]))
        if delay <= 0:
            transport.sendto(data, dest)
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def deliver() -> None:
            self._pending.discard(handle)
            if not transport.is_closing():
                transport.sendto(data, dest)

        handle = loop.call_later(delay, deliver)
        self._pending.add(handle)

    def injected_jitter_ms(self, leg: Leg = "to_target") -> float:
        """The RFC 3550 interarrival jitter this relay's schedule produces on `leg`.

        A.8 computes J += (|D| - J)/16 over packets in arrival order, with
        D = difference of consecutive transit times (arrival - RTP timestamp). That
        estimator's expected value is the mean |D|, so the reference is mean |D| over
        the relay's own delivery schedule, sorted by delivery time (reordered packets
        count in arrival order, exactly as a receiver sees them). It includes the
        sender's own timing noise, which any receiver also sees, and excludes what the
        receiver's socket and event loop add, which is the error being measured.
        """
        schedule = sorted(self._schedule[leg])
        if len(schedule) < 2:
            return 0.0
        total = 0.0
        previous = None
        for delivered, ts in schedule:
            transit = delivered - ts / self.clock_rate
            if previous is not None:
                d = transit - previous
                # 32-bit timestamp wrap, expressed in seconds.
                span = 2**32 / self.clock_rate
                d = (d + span / 2) % span - span / 2
                total += abs(d)
            previous = transit
        return total / (len(schedule) - 1) * 1000.0
