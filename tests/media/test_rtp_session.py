"""RtpSession loopback: two real sessions on 127.0.0.1 (real sockets, real clock)."""

from __future__ import annotations

import asyncio
import socket
import struct

import msgspec
import numpy as np
import pytest
import soxr

from theo_ray.media.codecs import create_codec
from theo_ray.media.rtp import build_rtp_fast, parse_rtp
from theo_ray.media.rtp_session import RtpSession
from theo_ray.media.settings import MediaSettings
from tests.media.signals import best_lag, snr_db, speech_like

SETTINGS = MediaSettings(jitter_min_ms=60.0, rtcp_interval_s=0.3)


class Collector:
    """Reads a session's inbound frames into a list in the background."""

    def __init__(self, session: RtpSession) -> None:
        self.frames = []
        self.task = asyncio.create_task(self._run(session))

    async def _run(self, session: RtpSession) -> None:
        async for frame in session.frames():
            self.frames.append(frame)

    def audio(self):
        return [f for f in self.frames if not f.concealed]


async def pair(codec: str = "PCMU", model_rate: int = 8000, settings: MediaSettings = SETTINGS, **kw):
    a = RtpSession(settings, model_rate=model_rate)
    b = RtpSession(settings, model_rate=model_rate, **kw)
    await b.start(codec, remote=a.local_address)
    await a.start(codec, remote=b.local_address)
    return a, b


def test_binds_even_rtp_port_and_rtcp_on_the_next_one():
    s = RtpSession()
    try:
        port = s.local_address[1]
        assert port % 2 == 0
        assert s._rtcp_sock.getsockname()[1] == port + 1
    finally:
        s._rtp_sock.close()
        s._rtcp_sock.close()


@pytest.mark.parametrize("delivery", ["arrival", "clock"])
async def test_audio_one_way_arrives_intact_in_order_without_gaps(delivery):
    a, b = await pair(settings=msgspec.structs.replace(SETTINGS, inbound_delivery=delivery))
    got = Collector(b)
    x = speech_like(8000, 2.0, top_hz=3400)
    a.enqueue(x, "sentence-1", last=True)
    await a.drained()
    await asyncio.sleep(0.2)
    stats_a, stats_b = a.stats(), b.stats()
    await a.stop()
    await b.stop()
    await got.task
    assert stats_a.packets_out == 100 == stats_b.packets_in
    assert stats_b.lost == 0 and stats_b.late == 0 and stats_b.duplicates == 0
    audio = got.audio()
    seqs = [f.sequence for f in audio]
    assert len(seqs) == 100 and all((s2 - s1) & 0xFFFF == 1 for s1, s2 in zip(seqs, seqs[1:]))
    # No gap: between the first and the last real frame every tick delivered real audio.
    real = [i for i, f in enumerate(got.frames) if not f.concealed]
    first, last = real[0], real[-1]
    assert all(not f.concealed for f in got.frames[first : last + 1])
    if delivery == "clock":
        ticks = np.diff([f.at for f in got.frames[first : last + 1]])
        assert np.allclose(ticks, 0.02)
    else:
        # Handed out as the packet came in: no jitter-buffer wait for an in-order packet.
        waits = [f.at - f.received_at for f in audio]
        assert max(waits) < 0.005, max(waits)
    # Intact: PCMU round trip (plus the single 8 -> 16 kHz resampling) vs the source.
    y16 = np.concatenate([f.pcm for f in got.frames[first : last + 1]])
    y8 = soxr.resample(y16, 16000, 8000).astype(np.int16)  # back to 8 kHz to compare
    lag = best_lag(x, y8, 800)  # jitter buffer prefill + ~30 ms soxr stream latency
    n = x.size - 400
    assert snr_db(x[:n], y8[lag : lag + n]) >= 30.0
    assert stats_b.send_interval_error_p99_ms == 0.0  # b sent nothing
    assert stats_a.send_interval_error_p99_ms < 20.0  # generous: timing is benchmarked, not tested


async def test_rtp_header_fields_on_the_wire():
    """A raw socket plays the peer, to check seq/ts/SSRC/marker/PT as sent."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", 0))
    raw.setblocking(False)
    a = RtpSession(SETTINGS, model_rate=16000)
    await a.start("G722", remote=raw.getsockname())
    loop = asyncio.get_running_loop()
    try:
        a.enqueue(np.zeros(320 * 3, np.int16), "one", last=True)
        packets = [parse_rtp(await asyncio.wait_for(loop.sock_recv(raw, 2048), 2)) for _ in range(3)]
        await asyncio.sleep(0.1)
        a.enqueue(np.zeros(320 * 2, np.int16), "two", last=True)
        packets += [parse_rtp(await asyncio.wait_for(loop.sock_recv(raw, 2048), 2)) for _ in range(2)]
    finally:
        await a.stop()
        raw.close()
    assert {p.payload_type for p in packets} == {9} and {p.ssrc for p in packets} == {a.ssrc}
    assert [p.marker for p in packets] == [True, False, False, True, False]
    seqs = [p.sequence for p in packets]
    assert all((s2 - s1) & 0xFFFF == 1 for s1, s2 in zip(seqs, seqs[1:]))
    ts = [p.timestamp for p in packets]
    assert [(t2 - t1) & 0xFFFFFFFF for t1, t2 in zip(ts[:3], ts[1:3])] == [160, 160]  # G.722: 8 kHz clock
    gap = (ts[3] - ts[2]) & 0xFFFFFFFF
    assert gap % 160 == 0 and gap >= 160 * 5  # the silence between talkspurts shows in the timestamp
    assert all(len(p.payload) == 160 for p in packets)


async def test_flush_stops_sending_within_one_packet_time():
    a, b = await pair()
    got = Collector(b)
    a.enqueue(speech_like(8000, 3.0), "long")
    await asyncio.sleep(0.5)
    sent_before = a.stats().packets_out
    result = a.flush()
    await asyncio.sleep(0.3)
    sent_after = a.stats().packets_out
    received = b.stats().packets_in
    await a.stop()
    await b.stop()
    await got.task
    assert sent_after - sent_before <= 1  # at most the packet of the tick in progress
    assert received == sent_after
    assert result.dropped_samples > 8000  # most of the 3 s never went out
    heard = {p.mark: p for p in result.progress}["long"]
    assert heard.sent_samples == sent_before * 160 or heard.sent_samples == (sent_before + 1) * 160


async def test_drained_resolves_after_last_packet_plus_playout_delay():
    settings = MediaSettings(jitter_min_ms=60.0, playout_delay_ms=100.0)
    a, b = await pair(settings=settings)
    got = Collector(b)
    a.enqueue(speech_like(8000, 0.6), "transfer-notice", last=True)
    heard_at = await a.drained()
    resolved_at = a._clock()
    await asyncio.sleep(0.2)
    await a.stop()
    await b.stop()
    await got.task
    last_arrival = max(f.received_at for f in got.audio())
    progress = a.playout.progress("transfer-notice")
    assert progress.complete
    # heard_at is exactly the last send + the configured delay...
    assert heard_at == pytest.approx(progress.last_sent_at + 0.1)
    # ...which on loopback is ~100 ms after the last packet arrived at the peer.
    assert 0.08 <= heard_at - last_arrival <= 0.1 + 1e-3
    assert resolved_at >= heard_at - 0.002  # it did not resolve early


async def test_rtcp_reports_flow_both_ways_with_rtt():
    a, b = await pair()
    a.enqueue(speech_like(8000, 1.5), "x", last=True)
    b.enqueue(speech_like(8000, 1.5), "y", last=True)
    got_a, got_b = Collector(a), Collector(b)
    await asyncio.sleep(1.6)
    sa, sb = a.stats(), b.stats()
    await a.stop()
    await b.stop()
    await asyncio.gather(got_a.task, got_b.task)
    for s in (sa, sb):
        assert s.rtcp_in >= 1 and s.rtcp_out >= 1
        assert s.rtt_ms is not None and 0.0 <= s.rtt_ms < 50.0
        assert s.remote_cumulative_lost == 0
        assert s.mos is not None and s.mos > 4.0
        assert s.drops.rtcp_garbage == 0


async def test_hold_stops_sending_and_resume_continues():
    a, b = await pair()
    got = Collector(b)
    a.set_direction("recvonly")
    a.enqueue(speech_like(8000, 0.4), "held", last=True)
    await asyncio.sleep(0.3)
    assert a.stats().packets_out == 0
    a.set_direction("sendrecv")
    await a.drained(0)
    assert a.stats().packets_out == 20
    await a.stop()
    await b.stop()
    await got.task


async def test_update_remote_relatches_to_the_new_peer():
    a, b = await pair()
    c = RtpSession(SETTINGS, model_rate=8000)
    await c.start("PCMU", remote=b.local_address)
    got_a, got_c = Collector(a), Collector(c)
    b.enqueue(speech_like(8000, 0.2), "first", last=True)
    await b.drained(0)
    b.update_remote(*c.local_address)  # re-INVITE: the call moved to c
    b.enqueue(speech_like(8000, 0.2), "second", last=True)
    await b.drained(0)
    await asyncio.sleep(0.15)
    sa, sc = a.stats(), c.stats()
    for s in (a, b, c):
        await s.stop()
    await asyncio.gather(got_a.task, got_c.task)
    assert sa.packets_in == 10 and sc.packets_in == 10


async def test_stop_closes_sockets_and_ends_frames():
    a, b = await pair()
    got = Collector(b)
    port_a, port_b = a.local_address[1], b.local_address[1]
    await a.stop()
    await b.stop()
    await asyncio.wait_for(got.task, 1.0)
    assert not a.running
    for port in (port_a, port_a + 1, port_b, port_b + 1):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", port))  # free again: the session closed it
        probe.close()


async def test_bad_input_is_dropped_counted_and_the_stream_goes_on():
    a, b = await pair(allowed_remote_hosts=["127.0.0.1"])
    got = Collector(b)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    foreign_host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    foreign_host.bind(("127.0.0.2", 0))
    target = b.local_address
    good = build_rtp_fast(0, 1, 160, 99, create_codec("PCMU").encode(np.zeros(160, np.int16)), False)
    # Before the first valid packet nothing is latched: malformed input counts by reason.
    stranger.sendto(b"\x80\x00\x00", target)  # short
    stranger.sendto(b"\x40" + good[1:], target)  # RTP version 1
    stranger.sendto(good + b"\x00" * 2000, target)  # oversized
    stranger.sendto(build_rtp_fast(96, 1, 160, 99, b"\x00" * 160, False), target)  # wrong PT
    rng = np.random.default_rng(5)
    garbage = [rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8).tobytes() for _ in range(30)]
    for blob in garbage:
        stranger.sendto(blob, target)
    foreign_host.sendto(good, target)  # a host that is not allowed
    await asyncio.sleep(0.1)
    early = b.stats().drops
    assert early.short >= 1 and early.bad_version >= 1 and early.oversized == 1
    assert early.bad_payload_type >= 1 and early.foreign_address == 1
    total_early = sum(msgspec_fields(early))
    assert total_early == 4 + len(garbage) + 1
    # Now the real stream; garbage keeps coming from the stranger, who is now foreign.
    a.enqueue(speech_like(8000, 1.0), "speech", last=True)
    for _ in range(10):
        await asyncio.sleep(0.05)
        stranger.sendto(good, target)
        stranger.sendto(garbage[0], target)
    await a.drained(0)
    await asyncio.sleep(0.2)
    sa, sb = a.stats(), b.stats()
    await a.stop()
    await b.stop()
    await got.task
    stranger.close()
    foreign_host.close()
    assert sb.packets_in == sa.packets_out == 50 and sb.lost == 0
    assert sb.drops.foreign_address >= 1 + 20 - 2  # a couple may race the latch
    assert len(got.audio()) == 50


def msgspec_fields(value) -> list[int]:
    return [getattr(value, field.name) for field in msgspec.structs.fields(value)]


async def test_telephone_events_reported_once():
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", 0))
    b = RtpSession(SETTINGS)
    await b.start("PCMU", remote=raw.getsockname(), telephone_event_pt=101)
    try:
        for seq, end in ((1, False), (2, True), (3, True), (4, True)):  # end sent 3 times
            payload = struct.pack("!BBH", 5, 0x80 if end else 0, 800)
            raw.sendto(build_rtp_fast(101, seq, 1000, 7, payload, seq == 1), b.local_address)
        event = await asyncio.wait_for(b.telephone_events().__anext__(), 1.0)
        await asyncio.sleep(0.05)
        assert event.event == 5 and event.duration == 800
        assert b._events.qsize() == 0 and b.stats().telephone_event_packets == 4
    finally:
        await b.stop()
        raw.close()


@pytest.mark.parametrize("codec, model_rate", [("PCMU", 8000), ("G722", 16000)])
@pytest.mark.parametrize("delivery", ["arrival", "clock"])
async def test_arrival_probe_sees_each_packet_no_later_than_its_frame(codec, model_rate, delivery):
    """The barge-in fast path: `set_arrival_probe` reports each audio packet's RMS as it
    arrives -- in clock delivery a jitter-buffer depth (60 ms minimum here) before the same
    audio comes out as a frame, in arrival delivery together with it -- and its own decoder
    leaves the frame path's audio untouched (G.722's ADPCM decoder is stateful)."""
    settings = msgspec.structs.replace(SETTINGS, inbound_delivery=delivery)
    a, b = await pair(codec, model_rate=model_rate, settings=settings)
    probed: list[tuple[float, float]] = []
    b.set_arrival_probe(lambda rms, at: probed.append((rms, at)))
    got = Collector(b)
    x = speech_like(model_rate, 1.0, top_hz=3400)
    a.enqueue(x, "s", last=True)
    await a.drained()
    await asyncio.sleep(0.2)
    stats = b.stats()
    await a.stop()
    await b.stop()
    await got.task
    audio = got.audio()
    assert len(probed) == stats.packets_in == len(audio) == 50
    leads = [f.at - at for f, (_, at) in zip(audio, probed)]
    if delivery == "clock":
        assert b.jitter_depth_ms >= 60.0
        # Each frame's packet was probed at its arrival, and the frame came out a tick or more later.
        assert min(leads) >= 0.02 - 1e-3, min(leads)
    else:
        assert b.jitter_depth_ms == 0.0
        assert 0.0 <= min(leads) and max(leads) < 0.005, (min(leads), max(leads))
    # The probe's level is the packet's: loud speech, nothing near silence.
    levels = np.array([rms for rms, _ in probed])
    frame_levels = np.array([np.sqrt(np.mean(f.pcm.astype(np.float64) ** 2)) for f in audio])
    assert np.all(levels > 300) and np.allclose(levels, frame_levels, rtol=0.35)


@pytest.mark.parametrize("codec, model_rate", [("PCMU", 8000), ("G722", 16000)])
async def test_dtmf_sent_as_rfc4733_reaches_the_peer_as_keys_in_order(codec, model_rate):
    """send_dtmf() on one session: the other reports each key once, in order, with the
    duration the sender gave it, and the audio stream goes on around the keys."""
    a = RtpSession(SETTINGS, model_rate=model_rate)
    b = RtpSession(SETTINGS, model_rate=model_rate)
    await b.start(codec, remote=a.local_address, telephone_event_pt=101)
    await a.start(codec, remote=b.local_address, telephone_event_pt=101)
    try:
        a.enqueue(speech_like(model_rate, 1.5), "speech", last=True)
        await asyncio.wait_for(a.send_dtmf("12#9"), 3.0)
        events = b.telephone_events().__aiter__()
        keys = [await asyncio.wait_for(events.__anext__(), 1.0) for _ in range(4)]
        assert [k.event for k in keys] == [1, 2, 11, 9]
        assert {k.duration for k in keys} == {5 * a._outbound.ts_step}  # 100 ms in RTP units
        assert b.stats().drops.bad_telephone_event == 0
        await asyncio.wait_for(a.drained(), 3.0)  # the audio was sent too, around the keys
        with pytest.raises(ValueError):
            a.send_dtmf("x")
    finally:
        await a.stop()
        await b.stop()


async def test_dtmf_is_refused_when_the_peer_negotiated_no_telephone_event():
    a, b = await pair()
    try:
        with pytest.raises(ValueError, match="telephone-event"):
            a.send_dtmf("1")
    finally:
        await a.stop()
        await b.stop()
