"""`theo bench media`: N concurrent loopback SIP calls into echo-mode CallActors.

It owns the echo call plane used to measure the media path end to end: a private,
uniquely named CallSupervisor (ConversationSettings mode "echo": no models, every
caller frame is played straight back) and SipGateway actor on a free loopback port,
and callers that are pjsua2 SipCaller processes in "external" media mode with a
caller-side RtpSession in this process playing a speech-like signal continuously.

What it measures, over a window that starts once every call is up and the warm pool
has refilled (so actor creation does not land inside it):
- send-interval error p50/p99 of the CallActors' RTP (their MediaStats, whose sample
  window is sized to the measuring window) and of the callers' sessions;
- frames lost (RTP sequence gaps), late and concealed, both directions;
- CPU per call (psutil CPU time of the CallActor processes over the window / N) and
  RSS per CallActor;
- INVITE -> 200 OK (the caller's dial -> "answered" event, same monotonic clock).

It is a benchmark, not a test: it prints figures, it asserts nothing. The tests in
tests/integration/ reuse EchoCallPlane and LoopbackCall.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import msgspec
import numpy as np

from theo_ray.bench.actor_processes import actor_process, cpu_seconds, rss_mb
from theo_ray.bench.stats import pct
from theo_ray.config import TheoConfig
from theo_ray.media.rtp_session import InboundFrame, MediaStats, RtpSession
from theo_ray.media.srtp import new_key
from theo_ray.sip.sdes import keys_from_answer
from theo_ray.sip.sdp import parse_offer
from theo_ray.media.settings import MediaSettings
from theo_ray.runtime.call_plane import CallPlane
from theo_ray.sim.sip_caller import CallerSettings, SipCaller
from theo_ray.sim.sip_caller_protocol import CallerEvent
from theo_ray.sip.free_port import free_sip_port  # noqa: F401 - re-exported for tests

# Calls one benchmark places at most; the plane gets ceil(N / sip.max_calls) gateway shards.
MAX_BENCH_CALLS = 64
SWEEP_CALLS = (1, 2, 4, 8, 16)
# Largest N is the one whose CallActors keep p99 send-interval error within this.
SEND_ERROR_BOUND_MS = 5.0


def speech_signal(rate: int, seconds: float, peak: int = 12000) -> np.ndarray:
    """A voiced-speech stand-in: harmonics of a gliding 100..160 Hz pitch with 1/k
    amplitudes below 3.4 kHz, and a 4 Hz syllabic envelope (int16)."""
    t = np.arange(int(rate * seconds)) / rate
    f0 = 130 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = np.zeros_like(t)
    for k in range(1, 22):  # 21 * 160 Hz stays under 3.4 kHz
        x += np.sin(k * phase + k * k * 0.1) / k
    x *= 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (x / np.abs(x).max() * peak).astype(np.int16)


class EchoCallPlane(CallPlane):
    """A private echo-mode call plane (no models) on free loopback SIP ports; `shards`
    gateway processes of 4 calls each."""

    def __init__(
        self, config: TheoConfig, warm_pool_size: int = 2, media: MediaSettings | None = None, shards: int = 1
    ) -> None:
        super().__init__(
            config, None, label="bench-media", warm_pool_size=warm_pool_size, media=media, shards=shards,
            conversation=msgspec.structs.replace(config.conversation, mode="echo"),
        )


class LoopbackCall:
    """One caller: a SipCaller process (external media) and the caller's RtpSession.

    The caller plays at the codec's own rate (no resampler on the caller side), and
    keeps every decoded inbound frame when `keep_frames` (tests), else only counts them.
    """

    def __init__(
        self,
        session_id: str,
        media: MediaSettings | None = None,
        codec: str = "PCMU",
        keep_frames: bool = True,
        srtp: bool = False,
        caller_settings: CallerSettings | None = None,
    ) -> None:
        self.session_id = session_id
        # SRTP (SDES): the caller offers RTP/SAVP with this key; Theo's comes in the answer.
        self.srtp_key = new_key() if srtp else b""
        self.codec = codec
        # A phone plays what it receives: one frame per tick after its jitter buffer.
        self.media = msgspec.structs.replace(media or MediaSettings(), inbound_delivery="clock")
        self.keep_frames = keep_frames
        self.caller = SipCaller(caller_settings or CallerSettings(media="external", codecs=[codec], srtp=srtp))
        self.rtp: RtpSession | None = None
        self.answered: CallerEvent | None = None
        self.answer_ms = 0.0
        self.frames: list[InboundFrame] = []
        self.frames_seen = 0
        self._reader: asyncio.Task | None = None
        self._feeder: asyncio.Task | None = None

    @property
    def call_rtp_address(self) -> tuple[str, int]:
        """The CallActor's RTP socket, from the SDP answer."""
        assert self.answered is not None
        return self.answered.remote_host, self.answered.remote_port

    async def dial(
        self,
        uri: str,
        via: Callable[[tuple[str, int]], Awaitable[tuple[str, int]]] | None = None,
        timeout: float = 20.0,
    ) -> CallerEvent:
        """Start the caller process, INVITE, and at the 200 OK start the caller's RTP, as a
        phone does: what the far end sends is consumed from the first packet on, never
        left to pile up. It goes to the answer's address, or to `await via(address)`
        (a relay built for that address)."""
        if self.caller.address is None:
            await self.caller.start()
        codec_rate = 16000 if self.codec.upper() in ("G722", "L16") else 8000
        # Inbound frames at the codec rate too: what arrives is compared sample for sample.
        settings = msgspec.structs.replace(self.media, inbound_rate=codec_rate)
        self.rtp = RtpSession(settings, host="127.0.0.1", model_rate=codec_rate)
        before = len(self.caller.events)
        dialled = time.monotonic()
        await self.caller.dial(
            uri, headers={"X-Theo-Session": self.session_id},
            local_rtp_host="127.0.0.1", local_rtp_port=self.rtp.local_address[1], srtp_key=self.srtp_key,
        )
        self.answered = await self._answer(before, timeout)
        if self.srtp_key:
            self.rtp.set_srtp(keys_from_answer(parse_offer(self.answered.sdp), self.srtp_key))
        self.answer_ms = (self.answered.at - dialled) * 1000.0
        send_to = await via(self.call_rtp_address) if via is not None else self.call_rtp_address
        await self.rtp.start(self.answered.codec or self.codec, send_to, self.answered.payload_type)
        self._reader = asyncio.create_task(self._read())
        await self.caller.wait_for("confirmed", timeout, after=before)
        return self.answered

    async def _answer(self, after: int, timeout: float) -> CallerEvent:
        """The 200 OK's event; RuntimeError at once if the call ends unanswered (403/503...)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.caller.events[after:]:
                if event.kind == "answered":
                    return event
                if event.kind == "disconnected":
                    raise RuntimeError(f"call {self.session_id} refused: SIP {event.status}")
            await asyncio.sleep(0.01)  # detection only: the answer time comes from event.at
        raise TimeoutError(f"call {self.session_id} not answered within {timeout} s")

    async def _read(self) -> None:
        assert self.rtp is not None
        async for frame in self.rtp.frames():
            self.frames_seen += 1
            if self.keep_frames:
                self.frames.append(frame)

    def play(self, pcm: np.ndarray, mark: str = "caller", last: bool = True) -> None:
        assert self.rtp is not None
        self.rtp.enqueue(pcm, mark, last=last)

    def play_continuously(self, pcm: np.ndarray, ahead_s: float = 0.2) -> None:
        """Loop `pcm` forever, fed like a streaming TTS: 100 ms chunks kept `ahead_s` ahead."""
        self._feeder = asyncio.create_task(self._feed(pcm, ahead_s))

    async def _feed(self, pcm: np.ndarray, ahead_s: float) -> None:
        assert self.rtp is not None and self.rtp.playout is not None
        rate = self.rtp.model_rate
        chunk = rate // 10
        position = 0
        while True:
            while self.rtp.playout.pending_samples < ahead_s * rate:
                # Wrapping indices keep the stream exactly periodic in len(pcm).
                self.rtp.enqueue(np.take(pcm, np.arange(position, position + chunk), mode="wrap"), "speech")
                position = (position + chunk) % pcm.size
            await asyncio.sleep(0.05)

    async def stop_playing(self) -> None:
        """Stop feeding: the caller's RTP stops once what was queued (<= ahead_s) is sent."""
        if self._feeder is not None:
            self._feeder.cancel()
            await asyncio.gather(self._feeder, return_exceptions=True)
            self._feeder = None

    async def hangup(self, timeout: float = 10.0) -> None:
        before = len(self.caller.events)
        await self.caller.hangup()
        await self.caller.wait_for("disconnected", timeout, after=before)

    async def wait_remote_hangup(self, timeout: float = 10.0) -> None:
        await self.caller.wait_for("disconnected", timeout)

    async def stop_media(self) -> None:
        await self.stop_playing()
        if self.rtp is not None:
            await self.rtp.stop()
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=2.0)
            self._reader = None

    async def close(self) -> None:
        await self.stop_media()
        await self.caller.close()


# ------------------------------------------------------------------ the benchmark


class CallFigures(msgspec.Struct):
    session_id: str
    invite_to_200_ms: float
    actor_send_error_p50_ms: float
    actor_send_error_p99_ms: float
    caller_send_error_p99_ms: float
    lost: int  # RTP sequence gaps in the window, both directions
    late: int
    concealed: int  # frames the PLC filled in the window, both directions
    actor_cpu_s: float
    actor_rss_mb: float


class MediaBenchReport(msgspec.Struct):
    calls: int
    codec: str
    seconds: float  # length of the measuring window
    send_interval_error_p50_ms: float  # CallActors: median over calls of each call's p50
    send_interval_error_p99_ms: float  # CallActors: worst call's p99
    caller_send_interval_error_p99_ms: float  # the callers' sessions (this process)
    frames_lost: int
    frames_late: int
    frames_concealed: int
    cpu_percent_per_call: float  # of one core: CallActor CPU time over the window / N
    rss_mb_per_call_actor: float  # mean over the CallActors at the end of the window
    rss_mb_per_call_actor_max: float
    invite_to_200_ms_p50: float
    invite_to_200_ms_p99: float
    holds: bool  # p99 send-interval error <= SEND_ERROR_BOUND_MS and no frame lost or concealed
    per_call: list[CallFigures] = msgspec.field(default_factory=list)


class MediaSweepReport(msgspec.Struct):
    runs: list[MediaBenchReport]
    largest_holding_calls: int  # every N up to it held; 0 when even one call did not
    bound_ms: float = SEND_ERROR_BOUND_MS
    failed: dict[int, str] = msgspec.field(default_factory=dict)  # N -> why its calls did not all come up


def _losses(stats: MediaStats) -> tuple[int, int, int]:
    return max(0, stats.lost), stats.late, stats.concealed_frames


async def run_media_bench(
    config: TheoConfig,
    calls: int,
    seconds: float,
    codec: str = "PCMU",
    say: Callable[[str], None] = print,
) -> MediaBenchReport:
    """Place `calls` concurrent echo calls, measure for `seconds`, hang up, clean up."""
    if not 1 <= calls <= MAX_BENCH_CALLS:
        raise ValueError(f"calls must be 1..{MAX_BENCH_CALLS}")
    ptime = config.media.ptime_ms
    # Each session's send-error percentiles then cover (about) the window only.
    media = msgspec.structs.replace(config.media, send_error_window=max(50, int(seconds * 1000 / ptime)))
    shards = -(-calls // config.sip.max_calls)
    plane = EchoCallPlane(config, warm_pool_size=min(2, calls), media=media, shards=shards)
    lines: list[LoopbackCall] = []
    await plane.start()
    try:
        speech = speech_signal(16000 if codec.upper() in ("G722", "L16") else 8000, 6.0)
        for index in range(calls):
            # One at a time, each on a warm actor: the answer time is the warm path's.
            await plane.wait_warm()
            line = LoopbackCall(f"bench-{uuid.uuid4().hex[:6]}-{index}", media, codec, keep_frames=False)
            lines.append(line)
            await line.dial(plane.uri_for(index))
            line.play_continuously(speech)
        await plane.wait_warm()
        await asyncio.sleep(1.0)  # every jitter buffer primed, the echo flowing
        actors = [await plane.call_actor(line.session_id) for line in lines]
        pids = [actor_process(actor) for actor in actors]
        say(f"  {calls} call(s) up; measuring {seconds:.0f} s ...")
        before_actor = [await a.stats.remote() for a in actors]
        before_caller = [line.rtp.stats() for line in lines]
        cpu0 = [cpu_seconds(pid) for pid in pids]
        wall0 = time.monotonic()
        await asyncio.sleep(seconds)
        wall = time.monotonic() - wall0
        cpu = [cpu_seconds(pid) - c for pid, c in zip(pids, cpu0)]
        after_actor = [(await a.stats.remote()).media for a in actors]
        after_caller = [line.rtp.stats() for line in lines]
        rss = [rss_mb(pid) for pid in pids]
    finally:
        for line in lines:
            try:
                await line.hangup()
            except (TimeoutError, RuntimeError):
                pass
            await line.close()
        await plane.stop()

    per_call = []
    for i, line in enumerate(lines):
        a0, a1 = _losses(before_actor[i].media), _losses(after_actor[i])
        c0, c1 = _losses(before_caller[i]), _losses(after_caller[i])
        delta = [a1[k] - a0[k] + c1[k] - c0[k] for k in range(3)]
        per_call.append(CallFigures(
            session_id=line.session_id,
            invite_to_200_ms=line.answer_ms,
            actor_send_error_p50_ms=after_actor[i].send_interval_error_p50_ms,
            actor_send_error_p99_ms=after_actor[i].send_interval_error_p99_ms,
            caller_send_error_p99_ms=after_caller[i].send_interval_error_p99_ms,
            lost=delta[0], late=delta[1], concealed=delta[2],
            actor_cpu_s=cpu[i], actor_rss_mb=rss[i],
        ))
    p99 = max(c.actor_send_error_p99_ms for c in per_call)
    lost = sum(c.lost for c in per_call)
    concealed = sum(c.concealed for c in per_call)
    answers = [c.invite_to_200_ms for c in per_call]
    return MediaBenchReport(
        calls=calls,
        codec=codec,
        seconds=wall,
        send_interval_error_p50_ms=float(np.median([c.actor_send_error_p50_ms for c in per_call])),
        send_interval_error_p99_ms=p99,
        caller_send_interval_error_p99_ms=max(c.caller_send_error_p99_ms for c in per_call),
        frames_lost=lost,
        frames_late=sum(c.late for c in per_call),
        frames_concealed=concealed,
        cpu_percent_per_call=100.0 * sum(cpu) / wall / calls,
        rss_mb_per_call_actor=float(np.mean(rss)),
        rss_mb_per_call_actor_max=float(max(rss)),
        invite_to_200_ms_p50=pct(answers, 50),
        invite_to_200_ms_p99=pct(answers, 99),
        holds=p99 <= SEND_ERROR_BOUND_MS and lost == 0 and concealed == 0,
        per_call=per_call,
    )


async def run_media_sweep(
    config: TheoConfig,
    seconds: float,
    codec: str = "PCMU",
    calls: tuple[int, ...] = SWEEP_CALLS,
    say: Callable[[str], None] = print,
) -> MediaSweepReport:
    """Run N = 1, 2, 4, 8, 16 in turn; the largest N that holds is the machine's figure."""
    runs: list[MediaBenchReport] = []
    failed: dict[int, str] = {}
    for n in calls:
        say(f"N = {n}")
        try:
            run = await run_media_bench(config, n, seconds, codec, say)
        except (TimeoutError, RuntimeError) as exc:  # a refused call fails this N, not the sweep
            failed[n] = f"{type(exc).__name__}: {exc}"
            say(f"  N = {n} failed: {failed[n]}")
            continue
        runs.append(run)
        say(f"  p99 send-interval error {run.send_interval_error_p99_ms:.2f} ms, lost {run.frames_lost}, "
            f"concealed {run.frames_concealed}, CPU {run.cpu_percent_per_call:.1f} %/call: "
            f"{'holds' if run.holds else 'does not hold'}")
    largest = 0
    for n in calls:  # the largest N below which every smaller N held too
        run = next((r for r in runs if r.calls == n), None)
        if run is None or not run.holds:
            break
        largest = n
    return MediaSweepReport(runs=runs, largest_holding_calls=largest, failed=failed)
