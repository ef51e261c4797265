"""The call plane end to end: real SIP on 127.0.0.1 through a real SipGateway actor into
real CallActors in echo mode (no models), on the session's real Ray cluster.

Each test builds its own uniquely named echo CallSupervisor + SipGateway
(`theo_ray.bench.media_bench.EchoCallPlane`) and calls it with pjsua2 SipCaller
processes in "external" media mode, whose RTP is a caller-side RtpSession in this
process (`LoopbackCall`). The caller plays at 8 kHz and receives at 8 kHz, so what
comes back is compared sample for sample with what was sent.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import msgspec
import numpy as np
import psutil
import pytest

from tests.media.signals import snr_db, speech_like
from theo_ray.bench.actor_processes import alive_actors
from theo_ray.bench.media_bench import EchoCallPlane, LoopbackCall
from tests.media.impairing_relay import ImpairingRelay
from theo_ray.media.rtp_session import DropCounters

pytestmark = pytest.mark.slow

RATE = 8000
FRAME = RATE // 50


async def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


def circular_lag(reference: np.ndarray, window: np.ndarray) -> int:
    """The shift L for which window == roll(reference, -L): the caller plays `reference`
    in an exact loop, so any window of len(reference) is a rotation of it."""
    ref = reference.astype(np.float64)
    win = window.astype(np.float64)
    corr = np.fft.irfft(np.fft.rfft(win) * np.conj(np.fft.rfft(ref)), ref.size)
    return int((-np.argmax(corr)) % ref.size)


def in_order_runs(frames) -> list[list]:
    """Check one frame per 20 ms tick and packets in order; return the runs of frames with
    consecutive sequence numbers. A run ends where the receiver's jitter buffer skipped a
    frame to get shallower (a sequence step of 2 with nothing lost), which is adaptation,
    not a network gap: the caller's MediaStats say whether anything was lost or late."""
    ticks = np.diff([f.at for f in frames])
    assert np.allclose(ticks, 0.02), "an inbound tick was skipped"
    real = [f for f in frames if not f.concealed]
    steps = np.diff(np.array([f.sequence for f in real], dtype=np.int64)) % 65536
    assert np.all((steps >= 1) & (steps <= 2)), f"packets out of order or duplicated: {np.unique(steps)}"
    runs, current = [], [real[0]]
    for frame, step in zip(real[1:], steps):
        if step != 1:
            runs.append(current)
            current = []
        current.append(frame)
    runs.append(current)
    return runs


def settled_from(frames) -> int:
    """Index of the first received frame 1 s after the echo began (the idle fill before
    it is at -65 dBFS; the source never drops below ~-30 dBFS)."""
    for i, frame in enumerate(frames):
        if np.sqrt(np.mean(frame.pcm.astype(np.float64) ** 2)) > 200.0:
            return i + 50
    return 10**9


def window_counts(before, after) -> tuple[int, int, int]:
    """Lost, late and concealed frames between two MediaStats of one stream."""
    return (after.lost - before.lost, after.late - before.late, after.concealed_frames - before.concealed_frames)


def equalized_snr_db(reference: np.ndarray, received: np.ndarray, taps: int = 33) -> float:
    """SNR of `received` against the best `taps`-tap linear filter of `reference`
    (least squares): what a linear, time-invariant response of the path (a
    resampler's phase response) explains is not counted as noise; quantisation
    noise, clicks, gaps, misalignment and any non-linear distortion are."""
    half = taps // 2
    ref = reference.astype(np.float64)
    rec = received.astype(np.float64)
    basis = np.stack([np.roll(ref, k) for k in range(-half, half + 1)], axis=1)
    weights, *_ = np.linalg.lstsq(basis, rec, rcond=None)
    return snr_db(rec, basis @ weights)


async def test_echo_round_trip_is_intact_in_order_and_gapless(ray_cluster, theo_config):
    """Caller -> CallActor -> caller over a clean loopback path: two PCMU passes.

    The CallActor decodes to 8 kHz, resamples once to 16 kHz (its model rate), echoes,
    resamples back to 8 kHz and encodes again. A µ-law decode gives exactly a
    reconstruction level, and an 8k->16k->8k round trip of a signal band-limited to
    3.4 kHz moves it by far less than half a quantisation step, so the second encoding
    adds almost no noise: the round trip should score about one pass's µ-law SNR
    (37.0 dB on this signal, computed offline) minus a little.

    Asserted: raw waveform SNR >= 30 dB over one loop of the source after aligning by
    whole samples (noise, gaps, clicks, phase distortion all count; the libsamplerate
    Resampler is linear-phase and hands out aligned output, so nothing needs equalising).
    The SNR after a 33-tap least-squares equaliser is printed beside it: a gap between
    the two would mean a phase defect (soxr's variable-rate engine, used before, scored
    ~20 dB raw against 34.5 dB equalised). Also, over the measured window (the echo after
    1 s of settling): nothing lost, late or concealed at either end, packets in order, one
    frame per 20 ms tick. These are real-time checks: on cores saturated by other work the
    messages show the event-loop lateness.
    """
    source = speech_like(RATE, 4.0, top_hz=3400)
    async with EchoCallPlane(theo_config, warm_pool_size=1) as plane:
        line = LoopbackCall("it-clean", theo_config.media)
        try:
            await line.dial(plane.uri)
            assert line.answered.codec == "PCMU"
            # The warm pool refills after each call opens (a new Ray worker: ~1 s of CPU);
            # on 2 cores that competes with the live call, so the speech starts after it.
            await plane.wait_warm()
            line.play_continuously(source)
            # The echo's onset and 1 s to settle. The counters are read there and again at
            # the end: what is asserted is the echo over the measured window, not the call's
            # set-up (the dial and the warm pool's new worker are the busiest moments of a
            # 2-core machine; a scheduling stall there says nothing about the media path).
            await wait_until(lambda: settled_from(line.frames) <= len(line.frames), 20.0, "the echo")
            actor_start = await plane.media_stats("it-clean")
            caller_start = line.rtp.stats()
            start = len(line.frames)
            # Room for one whole loop of the source between two jitter-buffer adaptations.
            await wait_until(lambda: start + 50 * 5.5 <= len(line.frames), 20.0, "one loop of the echo")
            actor = await plane.media_stats("it-clean")
            caller = line.rtp.stats()
            frames = list(line.frames)[start:]
            await line.hangup()
        finally:
            await line.close()

    runs = in_order_runs(frames)
    longest = max(runs, key=len)
    loop_frames = source.size // FRAME
    window = np.concatenate([f.pcm for f in longest[:loop_frames]])
    lag = circular_lag(source, window)
    aligned = np.roll(source, -lag)
    raw_snr = snr_db(aligned, window)
    snr = equalized_snr_db(aligned, window)
    print(f"\nround trip: lag={lag} samples, SNR={snr:.1f} dB equalised, {raw_snr:.1f} dB raw; "
          f"actor={actor.packets_in} in {actor.packets_out} out, concealed {actor.concealed_frames}, "
          f"send p99={actor.send_interval_error_p99_ms:.2f} ms; caller concealed={caller.concealed_frames}, "
          f"jitter-buffer skips {len(runs) - 1}")
    # Timing first: a CallActor that concealed (its inbound ran dry) echoes an extra
    # frame, which shifts everything after it; the SNR is only meaningful without that.
    timing = (f"send lateness p99 actor {actor.send_lateness_p99_ms:.1f} ms / caller "
              f"{caller.send_lateness_p99_ms:.1f} ms, clock resyncs {actor.clock_resyncs}/{caller.clock_resyncs}")
    assert window_counts(actor_start, actor) == (0, 0, 0), timing
    assert window_counts(caller_start, caller) == (0, 0, 0), timing
    assert not any(f.concealed for f in frames)
    assert len(runs) <= 3 and len(longest) >= loop_frames, [len(r) for r in runs]
    assert actor.drops == DropCounters()
    assert raw_snr >= 30.0 and snr >= 30.0, (raw_snr, snr)


def without_idle_fill(config):
    """Media settings for a plane whose caller's RTP goes through a relay or tap.

    With the idle fill on, a CallActor sends comfort noise to the offer's address (the
    caller's own socket) before the caller's first packet arrives through the relay,
    and the caller's symmetric RTP would then latch onto the CallActor directly, around
    the relay. Off, the CallActor's first packet goes where the caller's came from."""
    return msgspec.structs.replace(config.media, idle_fill_dbfs=None)


async def test_impaired_path_stays_continuous_and_reports_the_injected_loss_and_jitter(ray_cluster, theo_config):
    """Caller -> ImpairingRelay (5% loss, 0..40 ms uniform delay, both legs) -> CallActor.

    Reference figures are the relay's own: its exact drop count toward the CallActor,
    and the RFC 3550 jitter its delivery schedule produces (`injected_jitter_ms`, see
    tests/media/test_impaired_path.py for why that, and not 40/3 ms, is the truth).
    The CallActor's cumulative loss and its call-averaged RFC 3550 jitter must be
    within 20% of them. Continuity: the CallActor echoes one frame per tick (concealed
    ones included), so the caller sees a sequence-gap only where the relay dropped a
    packet on the way back; the caller's decoded stream has one frame per 20 ms tick.
    """
    seconds = 15.0
    source = speech_like(RATE, 4.0, top_hz=3400)
    async with EchoCallPlane(theo_config, warm_pool_size=1, media=without_idle_fill(theo_config)) as plane:
        # No idle fill at the caller either: when it stops playing, its RTP really stops.
        line = LoopbackCall("it-impaired", without_idle_fill(theo_config))
        relay = None

        async def through_relay(call_rtp: tuple[str, int]) -> tuple[str, int]:
            nonlocal relay
            relay = ImpairingRelay(call_rtp, loss_percent=5.0, jitter_ms=40.0, seed=7)
            await relay.start()
            return relay.local_address

        try:
            await line.dial(plane.uri, via=through_relay)
            await plane.wait_warm()
            line.play_continuously(source)
            await asyncio.sleep(seconds)
            await line.stop_playing()
            await asyncio.sleep(0.6)  # the last delayed packets delivered both ways
            actor = await plane.media_stats("it-impaired")
            caller = line.rtp.stats()
            frames = list(line.frames)
            await line.hangup()
        finally:
            await line.close()
            if relay is not None:
                await relay.stop()

    up, down = relay.stats["to_target"], relay.stats["to_client"]
    injected_jitter = relay.injected_jitter_ms("to_target")
    print(f"\nimpaired: up dropped={up.dropped}/{up.received} actor lost={actor.lost} late={actor.late} "
          f"jitter injected={injected_jitter:.2f} ms actor={actor.jitter_mean_ms:.2f} ms "
          f"(jb target {actor.jitter_buffer_target_ms:.0f} ms, mos {actor.mos}); down dropped={down.dropped} "
          f"caller lost={caller.lost} concealed={caller.concealed_frames}")
    # A CallActor whose event loop is starved (other work on the cores) adds its own
    # lateness to every arrival it stamps: said in the messages, as it is not the path's.
    starved = f"CallActor send lateness p99 {actor.send_lateness_p99_ms:.1f} ms, resyncs {actor.clock_resyncs}"
    assert up.received >= 0.9 * seconds * 50
    assert 0.03 * up.received <= up.dropped <= 0.07 * up.received
    assert abs(actor.lost - up.dropped) <= 0.2 * up.dropped, starved
    assert abs(actor.jitter_mean_ms - injected_jitter) <= 0.2 * injected_jitter, starved
    assert actor.packets_in == up.forwarded
    # The CallActor concealed what was lost (and late), and kept echoing every tick.
    assert actor.concealed_frames >= actor.lost
    assert abs(caller.lost - down.dropped) <= 0.2 * down.dropped + 1
    real = [i for i, f in enumerate(frames) if not f.concealed]
    body = frames[real[0] : real[-1] + 1]
    assert np.allclose(np.diff([f.at for f in body]), 0.02)
    assert sum(f.concealed for f in body) >= down.dropped - 2


def _udp_ports(pids: set[int]) -> set[int]:
    ports = set()
    for pid in pids:
        try:
            for conn in psutil.Process(pid).net_connections(kind="udp"):
                if conn.laddr:
                    ports.add(conn.laddr.port)
        except psutil.Error:
            continue
    return ports


def _cluster_workers() -> set[int]:
    """PIDs of every process under this cluster's raylet (workers of all actors)."""
    parents = set()
    for pid in alive_actors("CallActor").values():
        try:
            parents.add(psutil.Process(pid).ppid())
        except psutil.Error:
            continue
    pids = set()
    for parent in parents:
        try:
            pids |= {p.pid for p in psutil.Process(parent).children(recursive=True)}
        except psutil.Error:
            continue
    return pids


async def test_caller_and_agent_hangups_leave_no_actor_or_socket_behind(ray_cluster, theo_config):
    """10 sequential calls, alternately ended by the caller (BYE from the caller) and by
    the agent (SipGateway.hangup). Afterwards the cluster has exactly the warm pool's
    CallActors alive (counted in the GCS actor table), every call's RTP/RTCP ports are
    unbound, and the Ray workers hold no more UDP sockets than before the calls."""
    calls = 10
    pool = 2
    before_plane = set(alive_actors("CallActor"))
    async with EchoCallPlane(theo_config, warm_pool_size=pool) as plane:
        await plane.wait_warm()
        workers = _cluster_workers()
        sockets_before = len(_udp_ports(workers))
        ports = []
        for index in range(calls):
            session = f"it-orphan-{index}"
            await plane.wait_warm()
            line = LoopbackCall(session, theo_config.media)
            try:
                await line.dial(plane.uri)
                ports.append(line.call_rtp_address[1])
                line.play(speech_like(RATE, 0.4, top_hz=3400))
                await wait_until(lambda: line.frames_seen >= 10, 10.0, "echo")
                if index % 2:
                    assert await plane.gateway.hangup.remote(session)
                    await line.wait_remote_hangup()
                else:
                    await line.hangup()
            finally:
                await line.close()
        await wait_until(lambda: _no_active(plane), 10.0, "every call closed")
        await plane.wait_warm()
        mine = await wait_until(
            lambda: (lambda ids: ids if len(ids) == pool else None)(set(alive_actors("CallActor")) - before_plane),
            15.0, "killed CallActors to be DEAD",
        )
        workers = _cluster_workers()
        open_ports = _udp_ports(workers)
        sockets_after = len(open_ports)
        supervisor = await plane.supervisor.stats.remote()
        gateway = await plane.gateway.stats.remote()
    print(f"\nafter {calls} calls: alive CallActors of this plane={len(mine)} (pool {pool}), "
          f"worker UDP sockets {sockets_before} -> {sockets_after}")
    assert len(mine) == pool
    assert sockets_after <= sockets_before
    assert not open_ports & ({p for p in ports} | {p + 1 for p in ports})
    assert (supervisor.opened, supervisor.closed, supervisor.active) == (calls, calls, 0)
    assert (gateway.answered, gateway.byes_received, gateway.agent_hangups, gateway.active_calls) == (
        calls, calls // 2, calls // 2, 0)
    # Nothing of this plane survives the plane either.
    await wait_until(lambda: not (set(alive_actors("CallActor")) - before_plane), 15.0, "pool actors gone")


async def _no_active(plane: EchoCallPlane) -> bool:
    return (await plane.supervisor.stats.remote()).active == 0


def _rtp(sequence: int, payload_type: int = 0, size: int = 160, version: int = 2) -> bytes:
    header = struct.pack("!BBHII", version << 6, payload_type, sequence, 1000 + sequence * 160, 0x5EED)
    return header + b"\xff" * size


class PathTap(asyncio.DatagramProtocol):
    """The caller's path to the CallActor: a plain UDP forwarder (no impairment) that can
    also put datagrams of its own on the path, so bad packets come from the very address
    the CallActor latched on (a broken PBX), not from a stranger."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.client: tuple[str, int] | None = None
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if addr[:2] == self.target:
            if self.client is not None:
                self.transport.sendto(data, self.client)
        else:
            self.client = addr[:2]
            self.transport.sendto(data, self.target)

    def inject(self, data: bytes) -> None:
        self.transport.sendto(data, self.target)


async def test_bad_input_during_a_live_call_is_dropped_counted_and_the_echo_goes_on(ray_cluster, theo_config):
    """While the echo flows: random bytes, short packets, RTP version 1, oversized
    datagrams (from the latched path), and well-formed RTP from a foreign address
    (127.0.0.2, and another port of 127.0.0.1). Each lands in its MediaStats.drops
    counter, exactly; the echo keeps flowing without a concealed frame."""
    rng = np.random.default_rng(1234)
    garbage = [rng.integers(0, 256, int(rng.integers(1, 400)), dtype=np.uint8).tobytes() for _ in range(20)]
    async with EchoCallPlane(theo_config, warm_pool_size=1, media=without_idle_fill(theo_config)) as plane:
        line = LoopbackCall("it-bad-input", theo_config.media)
        loop = asyncio.get_running_loop()
        tap_transport = tap = stranger = stranger_local = None

        async def through_tap(call_rtp: tuple[str, int]) -> tuple[str, int]:
            nonlocal tap_transport, tap
            tap_transport, tap = await loop.create_datagram_endpoint(
                lambda: PathTap(call_rtp), local_addr=("127.0.0.1", 0))
            return tap_transport.get_extra_info("sockname")[:2]

        try:
            await line.dial(plane.uri, via=through_tap)
            await plane.wait_warm()
            line.play_continuously(speech_like(RATE, 4.0, top_hz=3400))
            await wait_until(lambda: line.frames_seen >= 25, 10.0, "echo")
            before = await plane.media_stats("it-bad-input")
            seen_before = line.frames_seen
            target = line.call_rtp_address
            stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            stranger.bind(("127.0.0.2", 0))
            stranger_local = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            stranger_local.bind(("127.0.0.1", 0))
            for i in range(5):
                tap.inject(b"\x80\x00\x01"[: 1 + i % 3])  # short
                tap.inject(_rtp(60000 + i, version=1))  # wrong version
                tap.inject(_rtp(61000 + i, size=3000))  # oversized
                stranger.sendto(_rtp(62000 + i), target)  # foreign host
                stranger_local.sendto(_rtp(63000 + i), target)  # foreign port
                await asyncio.sleep(0.02)
            for blob in garbage:
                tap.inject(blob)
            await asyncio.sleep(1.5)
            after = await plane.media_stats("it-bad-input")
            seen_after = line.frames_seen
            caller = line.rtp.stats()
            await line.hangup()
        finally:
            await line.close()
            for s in (stranger, stranger_local):
                if s is not None:
                    s.close()
            if tap_transport is not None:
                tap_transport.close()

    delta = {f: getattr(after.drops, f) - getattr(before.drops, f) for f in DropCounters.__struct_fields__}
    print(f"\nbad input: drops delta={delta}; echo frames during it={seen_after - seen_before}")
    # Each garbage blob is counted once under whichever reason its bytes trip first.
    assert delta["short"] >= 5 and delta["bad_version"] >= 5 and delta["oversized"] >= 5
    assert delta["foreign_address"] == 10
    assert sum(delta.values()) == 5 * 5 + len(garbage)
    # The call went on: packets kept arriving and coming back, and none of the bad
    # datagrams got into the stream (that would show as loss, duplicates or a resync).
    assert after.packets_in - before.packets_in >= 60
    assert seen_after - seen_before >= 60
    assert (after.lost, after.duplicates, caller.lost) == (0, 0, 0)
    assert after.packets_in == after.expected


async def test_gateway_shards_each_take_their_share_and_a_full_one_answers_503(ray_cluster, theo_config):
    """A shard admits `sip.max_calls` calls (pjsua's 4 slots in the pjsua2 wheel, one kept
    spare), so a node runs `sip.shards` gateway processes. Here max_calls=1 and 2 shards, to
    stay cheap: a 2nd call to shard 0 is refused with 503 + Retry-After (Asterisk's dialplan
    then tries the next shard), the same call to shard 1 is answered, both live calls echo,
    and an agent-side hang-up reaches the caller through the shard that holds that call."""
    config = msgspec.structs.replace(theo_config, sip=msgspec.structs.replace(theo_config.sip, max_calls=1))
    async with EchoCallPlane(config, warm_pool_size=2, shards=2) as plane:
        first = LoopbackCall("it-shard-a", config.media)
        refused = LoopbackCall("it-shard-b", config.media)
        second = LoopbackCall("it-shard-b", config.media)
        try:
            await first.dial(plane.uri_for(0))
            with pytest.raises(RuntimeError, match="SIP 503"):
                await refused.dial(plane.uri_for(0))
            await second.dial(plane.uri_for(1))
            for line in (first, second):
                line.play(speech_like(RATE, 0.4, top_hz=3400))
            await wait_until(lambda: first.frames_seen >= 10 and second.frames_seen >= 10, 10.0, "both echoes")
            assert await plane.hangup("it-shard-b")
            await second.wait_remote_hangup()
            await first.hangup()
            stats = await plane.gateway_stats()
        finally:
            for line in (first, refused, second):
                await line.close()
    assert [s.answered for s in stats] == [1, 1]
    assert stats[0].rejected_full == 1 and stats[1].agent_hangups == 1
