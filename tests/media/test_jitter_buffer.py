"""JitterBuffer: ordering, wrap, duplicates, late packets, loss markers, adaptation."""

from __future__ import annotations

import random

from theo_ray.media.jitter_buffer import JitterBuffer
from theo_ray.media.rtp import RtpPacket

PTIME = 0.02


def pkt(seq: int, ssrc: int = 1, step: int = 160) -> RtpPacket:
    return RtpPacket(0, seq & 0xFFFF, (seq * step) & 0xFFFFFFFF, ssrc, payload=bytes([seq & 0xFF]) * 4)


def drain(jb: JitterBuffer, start: float, ticks: int) -> list:
    out = []
    for k in range(ticks):
        frame = jb.pop(start + k * PTIME)
        if frame is not None:
            out.append(frame)
    return out


def played_seqs(frames) -> list:
    return [f.sequence if not f.missing else None for f in frames]


def test_in_order_stream_plays_every_packet_after_prefill():
    jb = JitterBuffer(8000, min_ms=40, max_ms=200)
    for i in range(10):
        jb.put(pkt(i), i * PTIME)
    assert jb.pop(0.0) is None  # still prefilling
    frames = drain(jb, 0.05, 10)
    assert played_seqs(frames) == list(range(10))
    assert jb.stats.late == jb.stats.duplicates == 0


def test_reorders_by_sequence():
    jb = JitterBuffer(8000, min_ms=60, max_ms=200)
    order = [0, 2, 1, 4, 3, 5, 7, 6]
    for n, seq in enumerate(order):
        jb.put(pkt(seq), n * 0.001)
    assert played_seqs(drain(jb, 0.1, 8)) == list(range(8))


def test_sequence_wrap_is_seamless():
    jb = JitterBuffer(8000, min_ms=40, max_ms=200)
    seqs = [65533, 65534, 65535, 65536, 65537, 65538]
    for n, seq in enumerate(seqs):
        jb.put(pkt(seq), n * PTIME)
    frames = drain(jb, 0.1, 6)
    assert played_seqs(frames) == [s & 0xFFFF for s in seqs]
    assert jb.stats.late == 0


def test_duplicates_dropped_and_counted_before_and_after_playout():
    jb = JitterBuffer(8000, min_ms=40, max_ms=200)
    jb.put(pkt(0), 0.0)
    jb.put(pkt(1), 0.02)
    assert jb.put(pkt(1), 0.021) == "duplicate"  # still buffered
    frames = drain(jb, 0.05, 2)
    assert played_seqs(frames) == [0, 1]
    assert jb.put(pkt(0), 0.1) == "duplicate"  # already played
    assert jb.stats.duplicates == 2 and jb.stats.late == 0


def test_lost_packet_gives_a_missing_marker_and_late_arrival_is_counted():
    jb = JitterBuffer(8000, min_ms=40, max_ms=200)
    for seq in (0, 1, 3, 4):
        jb.put(pkt(seq), seq * PTIME)
    frames = drain(jb, 0.05, 5)
    assert played_seqs(frames) == [0, 1, None, 3, 4]
    assert frames[2].missing
    assert jb.put(pkt(2), 0.2) == "late"
    assert jb.stats.late == 1


def test_paused_sender_is_not_counted_late():
    """A sender that stops (silence suppression, hold) and resumes with the next
    sequence number must not have its packets thrown away as late."""
    jb = JitterBuffer(8000, min_ms=40, max_ms=200)
    for seq in range(3):
        jb.put(pkt(seq), seq * PTIME)
    frames = drain(jb, 0.05, 20)  # 3 real frames, then the sender is silent
    assert played_seqs(frames)[:3] == [0, 1, 2]
    assert all(f.missing for f in frames[3:])
    assert jb.put(pkt(3), 0.5) == "queued"
    assert any(f.sequence == 3 and not f.missing for f in drain(jb, 0.52, 5))
    assert jb.stats.late == 0


def test_new_ssrc_resyncs():
    jb = JitterBuffer(8000, min_ms=40, max_ms=200)
    for seq in range(3):
        jb.put(pkt(seq), seq * PTIME)
    drain(jb, 0.05, 3)
    assert jb.put(pkt(40000, ssrc=2), 0.2) == "resync"
    frames = drain(jb, 0.3, 3)
    assert [f.sequence for f in frames if not f.missing] == [40000]
    assert jb.stats.resyncs == 1


def _simulate(jitter_s: float, seconds: float, seed: int = 3) -> JitterBuffer:
    rng = random.Random(seed)
    jb = JitterBuffer(8000, min_ms=40, max_ms=300)
    n = int(seconds / PTIME)
    arrivals = sorted((k * PTIME + rng.uniform(0, jitter_s), k) for k in range(n))
    i = 0
    tick = 0.0
    while tick < seconds + 1.0:
        while i < n and arrivals[i][0] <= tick:
            jb.put(pkt(arrivals[i][1]), arrivals[i][0])
            i += 1
        jb.pop(tick)
        tick += PTIME
    return jb


def test_depth_adapts_to_measured_jitter_within_bounds():
    calm = _simulate(0.002, 10)
    rough = _simulate(0.120, 10)
    # Calm network: stays at the configured minimum.
    assert calm.target_ms == 40.0
    # 0..120 ms uniform delay: the 97th percentile spread (~116 ms) + one frame.
    assert 120.0 <= rough.target_ms <= 150.0
    # Adapting means few late packets once the target is reached (< 3%).
    assert rough.stats.late < 0.03 * 500
    wild = _simulate(0.8, 5)
    assert wild.target_ms == 300.0  # clamped at max_ms


# ---------------------------------------------------------------- arrival-order delivery


def test_arrival_delivery_hands_out_an_in_order_packet_at_once():
    jb = JitterBuffer(8000, min_ms=40, max_ms=200)
    for i in range(5):
        jb.put(pkt(i), i * PTIME)
        frames = jb.pop_arrived(i * PTIME)
        assert played_seqs(frames) == [i]
    assert jb.pop_arrived(4 * PTIME + 0.01) == []  # nothing new, nothing overdue yet
    assert jb.stats.concealed == 0


def test_arrival_delivery_waits_for_a_reordered_packet():
    jb = JitterBuffer(8000, min_ms=40, max_ms=200)
    jb.put(pkt(0), 0.0)
    assert played_seqs(jb.pop_arrived(0.0)) == [0]
    jb.put(pkt(2), 0.041)  # 1 is late by 25 ms: still within the 40 ms target
    assert jb.pop_arrived(0.041) == []
    jb.put(pkt(1), 0.045)
    assert played_seqs(jb.pop_arrived(0.045)) == [1, 2]
    assert jb.stats.concealed == jb.stats.late == 0


def test_arrival_delivery_conceals_a_lost_packet_once_it_is_target_overdue():
    jb = JitterBuffer(8000, min_ms=40, max_ms=200)
    jb.put(pkt(0), 0.0)
    jb.pop_arrived(0.0)
    jb.put(pkt(2), 0.04)  # 1 never comes
    assert jb.pop_arrived(0.059) == []  # due at 0.0 + 20 ms + 40 ms
    assert played_seqs(jb.pop_arrived(0.061)) == [None, 2]
    jb.put(pkt(1), 0.07)
    assert jb.stats.late == 1 and jb.stats.concealed == 1


def test_arrival_delivery_keeps_time_moving_when_the_sender_pauses():
    """Nothing arrives: one concealed frame per ptime once overdue, and the sequence does not
    advance, so the paused sender's next packet still goes out (not counted late)."""
    jb = JitterBuffer(8000, min_ms=40, max_ms=200)
    jb.put(pkt(0), 0.0)
    jb.pop_arrived(0.0)
    concealed = jb.pop_arrived(0.0 + 0.02 + 0.04 + 0.1)  # 100 ms past the first due time
    assert len(concealed) == 6 and all(f.missing for f in concealed)
    jb.put(pkt(1), 0.2)
    assert played_seqs(jb.pop_arrived(0.2)) == [1]
    assert jb.stats.late == 0 and jb.stats.underruns == 6
