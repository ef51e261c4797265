"""A bad phone line between the simulated caller and the agent: loss, jitter and echo.

:class:`ImpairedLine` is a UDP relay on the caller's host that ``dial_and_run`` puts between
the caller's RtpSession and the agent (``line=``): the caller's SDP offers the relay's port,
so the agent sends to the relay from its first packet; the caller's session sends to the
relay, which forwards each way. What it does to the audio (:class:`LineSettings`):

- **loss**: each RTP packet is dropped with probability ``loss_percent`` (both directions);
- **jitter**: each RTP packet is held a uniform random 0..``jitter_ms`` (so packets reorder);
- **echo**: the agent's audio comes back to the agent inside the caller's packets,
  ``echo_delay_ms`` later and ``echo_gain_db`` quieter (a handset or speakerphone that
  leaks what it plays into its microphone). The caller's G.711/L16/G.722 payload is
  decoded, the echo added, and encoded again with the call's codec.

The RNG is seeded, so two runs of one scenario drop the same packet numbers. RTCP passes
untouched. The caller's recording is taken at the caller's session (before the relay), so
the caller-side analysis sees the caller's own voice, not the echo, and the agent audio as it
reached the caller through the line.

This is the simulator's own line model for the benchmarks (`theo bench turn-taking`); the
media tests have their own relay double in tests/media/impairing_relay.py.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque

import msgspec
import numpy as np

from theo_ray.media.codecs import Codec, create_codec
from theo_ray.media.rtp import RtpParseError, build_rtp_fast, parse_rtp
from theo_ray.media.rtp_sockets import bind_even_pair
from theo_ray.media.settings import MediaSettings


class LineSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    loss_percent: float = 0.0
    jitter_ms: float = 0.0
    # None: no echo. Otherwise the agent's audio, this many dB quieter, back towards the agent.
    echo_gain_db: float | None = None
    echo_delay_ms: float = 120.0
    seed: int = 7

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss_percent < 100.0:
            raise ValueError("`loss_percent` must be 0..100")
        if self.jitter_ms < 0 or self.echo_delay_ms < 0:
            raise ValueError("`jitter_ms` and `echo_delay_ms` must be >= 0")
        if self.echo_gain_db is not None and self.echo_gain_db > 0:
            raise ValueError("`echo_gain_db` must be <= 0 (an echo is quieter than the original)")

    def describe(self) -> str:
        parts = []
        if self.loss_percent or self.jitter_ms:
            parts.append(f"{self.loss_percent:g} % loss, 0-{self.jitter_ms:g} ms jitter")
        if self.echo_gain_db is not None:
            parts.append(f"echo {self.echo_gain_db:g} dB at {self.echo_delay_ms:g} ms")
        return ", ".join(parts) or "clean"


class LineStats(msgspec.Struct):
    to_agent: int = 0
    to_caller: int = 0
    dropped_to_agent: int = 0
    dropped_to_caller: int = 0
    echo_frames: int = 0  # caller packets that carried some of the agent's audio back
    not_mixed: int = 0  # caller packets the echo could not be added to (undecodable payload)


class _Port(asyncio.DatagramProtocol):
    def __init__(self, line: ImpairedLine, rtcp: bool) -> None:
        self.line, self.rtcp = line, rtcp

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.line._on_datagram(self.rtcp, data, addr)

    def error_received(self, exc: Exception) -> None:
        return None  # a side that went away: keep relaying the other


class ImpairedLine:
    """One call's relay. ``open`` before dialling, ``connect`` once the agent answered,
    ``close`` at the end (``dial_and_run`` does all three)."""

    def __init__(self, settings: LineSettings, host: str = "127.0.0.1") -> None:
        self.settings = settings
        self.host = host
        self.stats = LineStats()
        self._rng = random.Random(settings.seed)
        self._caller: tuple[str, int] | None = None
        self._agent: tuple[str, int] | None = None
        self._transports: list[asyncio.DatagramTransport] = []
        self._pending: set[asyncio.TimerHandle] = set()
        self._payload_type = -1
        self._caller_codec: Codec | None = None  # decodes the caller's stream
        self._caller_encoder: Codec | None = None  # encodes it again with the echo in it
        self._agent_codec: Codec | None = None  # decodes the agent's stream (the echo)
        self._echo: deque[tuple[float, np.ndarray]] = deque(maxlen=200)
        self._gain = 0.0 if settings.echo_gain_db is None else 10.0 ** (settings.echo_gain_db / 20.0)
        self.address: tuple[str, int] | None = None
        self._blackholed = False

    def blackhole(self) -> None:
        """From now on the line carries nothing either way (RTP and RTCP): a network that
        died mid-call without a BYE. Dropped packets are counted as losses."""
        self._blackholed = True

    async def open(self, caller: tuple[str, int]) -> tuple[str, int]:
        """Bind the relay's port pair; ``caller`` is the caller session's RTP address.
        Returns the address to offer in the caller's SDP."""
        loop = asyncio.get_running_loop()
        rtp, rtcp = bind_even_pair(self.host, 0, MediaSettings())
        for sock, is_rtcp in ((rtp, False), (rtcp, True)):
            transport, _ = await loop.create_datagram_endpoint(lambda r=is_rtcp: _Port(self, r), sock=sock)
            self._transports.append(transport)  # type: ignore[arg-type]
        self._caller = caller
        self.address = rtp.getsockname()[:2]
        return self.address

    def connect(self, agent: tuple[str, int], codec: str, payload_type: int) -> tuple[str, int]:
        """Forward to the agent's RTP address from now on; returns where the caller sends."""
        if self.address is None:
            raise RuntimeError("ImpairedLine.open() first")
        self._agent = agent
        self._payload_type = payload_type
        if self.settings.echo_gain_db is not None:
            self._caller_codec = create_codec(codec, payload_type)
            self._caller_encoder = create_codec(codec, payload_type)  # G.722 keeps state per direction
            self._agent_codec = create_codec(codec, payload_type)
        return self.address

    async def close(self) -> None:
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        for transport in self._transports:
            transport.close()
        self._transports.clear()

    # ------------------------------------------------------------ relaying

    def _on_datagram(self, rtcp: bool, data: bytes, addr: tuple) -> None:
        if self._caller is None or self._agent is None:
            return  # not answered yet: nothing to relay to
        from_caller = addr[1] in (self._caller[1], self._caller[1] + 1) and addr[0] == self._caller[0]
        if self._blackholed:
            if from_caller:
                self.stats.dropped_to_agent += 1
            else:
                self.stats.dropped_to_caller += 1
            return
        dest = self._agent if from_caller else self._caller
        dest = (dest[0], dest[1] + 1) if rtcp else dest
        transport = self._transports[1 if rtcp else 0]
        if rtcp:
            transport.sendto(data, dest)
            return
        now = asyncio.get_running_loop().time()
        if from_caller:
            data = self._with_echo(data, now)
        elif self._agent_codec is not None:
            self._keep_for_echo(data, now)
        s = self.settings
        if s.loss_percent and self._rng.random() * 100.0 < s.loss_percent:
            if from_caller:
                self.stats.dropped_to_agent += 1
            else:
                self.stats.dropped_to_caller += 1
            return
        if from_caller:
            self.stats.to_agent += 1
        else:
            self.stats.to_caller += 1
        delay = self._rng.uniform(0.0, s.jitter_ms / 1000.0) if s.jitter_ms else 0.0
        if delay <= 0.0:
            transport.sendto(data, dest)
            return
        handle: asyncio.TimerHandle | None = None

        def send() -> None:
            self._pending.discard(handle)  # type: ignore[arg-type]
            if not transport.is_closing():
                transport.sendto(data, dest)

        handle = asyncio.get_running_loop().call_later(delay, send)
        self._pending.add(handle)

    def _keep_for_echo(self, data: bytes, now: float) -> None:
        try:
            packet = parse_rtp(data)
            if packet.payload_type != self._payload_type:
                return  # comfort noise, DTMF: no echo
            pcm = self._agent_codec.decode(packet.payload)  # type: ignore[union-attr]
        except (RtpParseError, ValueError):
            return
        self._echo.append((now + self.settings.echo_delay_ms / 1000.0, pcm))

    def _with_echo(self, data: bytes, now: float) -> bytes:
        """The caller's packet with the agent's audio that is due by now added to it. Every
        caller packet is decoded and encoded again (G.722 keeps state across packets)."""
        if self._caller_codec is None or self._caller_encoder is None:
            return data
        try:
            packet = parse_rtp(data)
            if packet.payload_type != self._payload_type:
                return data
            pcm = self._caller_codec.decode(packet.payload)
        except (RtpParseError, ValueError):
            self.stats.not_mixed += 1
            return data
        # Echo more than a few frames overdue is stale (the caller's line stalled).
        while self._echo and self._echo[0][0] < now - 0.1:
            self._echo.popleft()
        mixed = pcm.astype(np.float32)
        if self._echo and self._echo[0][0] <= now:
            _, echo = self._echo.popleft()
            n = min(len(pcm), len(echo))
            mixed[:n] += self._gain * echo[:n].astype(np.float32)
            self.stats.echo_frames += 1
        payload = self._caller_encoder.encode(np.clip(mixed, -32768, 32767).astype(np.int16))
        return build_rtp_fast(packet.payload_type, packet.sequence, packet.timestamp, packet.ssrc, payload,
                              packet.marker)
