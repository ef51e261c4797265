"""RTCP packets (compound round trip) and receiver statistics (RFC 3550 A.1/A.3/A.8)."""

from __future__ import annotations

import random

import pytest

from theo_ray.media.reception_stats import ReceptionStats
from theo_ray.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpParseError,
    SenderReport,
    SourceDescription,
    build_compound,
    build_packet,
    ntp_from_unix,
    ntp_middle32,
    parse_compound,
)


def test_compound_round_trip():
    block = ReportBlock(ssrc=7, fraction_lost=25, cumulative_lost=-3, highest_sequence=70001,
                        jitter=123, last_sr=0x12345678, delay_since_last_sr=65536)
    packets = [
        SenderReport(1, ntp_from_unix(1_700_000_000.25), 4242, 10, 1600, [block]),
        SourceDescription([(1, "theo@call-1")]),
        Bye([1], "call ended"),
    ]
    data = build_compound(packets)
    assert len(data) % 4 == 0
    assert parse_compound(data) == packets
    rr = [ReceiverReport(9, [block, block]), SourceDescription([(9, "x")])]
    assert parse_compound(build_compound(rr)) == rr


def test_compound_must_start_with_a_report():
    with pytest.raises(ValueError):
        build_compound([SourceDescription([(1, "x")])])


def test_unknown_packet_types_are_skipped():
    xr = bytes([0x80, 207, 0, 1]) + b"\x00" * 4
    data = build_packet(ReceiverReport(5)) + xr + build_packet(Bye([5]))
    assert parse_compound(data) == [ReceiverReport(5), Bye([5])]


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"\x80\xc9", "short"),
        (bytes([0x40, 201, 0, 1]) + b"\x00" * 4, "bad_version"),
        (bytes([0x80, 201, 0, 9]) + b"\x00" * 4, "bad_length"),
        (bytes([0x81, 201, 0, 1]) + b"\x00" * 4, "bad_length"),  # claims a block it lacks
    ],
)
def test_malformed_rtcp_raises_typed_reason(data, reason):
    with pytest.raises(RtcpParseError) as err:
        parse_compound(data)
    assert err.value.reason == reason


def test_ntp_middle_bits():
    ntp = ntp_from_unix(0.5)
    assert ntp >> 32 == 2208988800 and (ntp & 0xFFFFFFFF) == 1 << 31
    assert ntp_middle32(ntp) == ((2208988800 & 0xFFFF) << 16) | 0x8000


def test_a8_jitter_converges_to_the_known_mean_deviation():
    """Transit alternates between +d and -d around a constant, so every |D| = 2d and the
    A.8 estimator must converge to 2d (in timestamp units)."""
    stats = ReceptionStats(8000)
    d = 0.005  # seconds
    for k in range(400):
        arrival = k * 0.02 + (d if k % 2 else -d) + 10.0
        stats.update(1, k, k * 160, arrival)
    assert stats.jitter == pytest.approx(2 * d * 8000, rel=1e-3)
    assert stats.jitter_ms == pytest.approx(10.0, rel=1e-3)


def test_a8_jitter_zero_for_a_perfect_stream_and_wraps_timestamps():
    stats = ReceptionStats(8000)
    base = 0xFFFFFF00
    for k in range(50):
        stats.update(1, k, (base + k * 160) & 0xFFFFFFFF, k * 0.02)
    assert stats.jitter < 1e-6


def test_loss_counts_with_sequence_wrap_and_fraction_per_interval():
    stats = ReceptionStats(8000)
    seqs = [65530 + k for k in range(20)]
    received = [s for i, s in enumerate(seqs) if i not in (3, 11)]  # 2 of 20 lost
    for s in received:
        stats.update(1, s & 0xFFFF, s * 160, s * 0.02)
    assert stats.expected == 20 and stats.cumulative_lost == 2
    assert stats.extended_max == 65536 + (65549 - 65536)
    block = stats.report_block()
    assert block.cumulative_lost == 2 and block.fraction_lost == (2 << 8) // 20
    for s in range(65550, 65560):  # next interval: no loss
        stats.update(1, s & 0xFFFF, s * 160, s * 0.02)
    assert stats.report_block().fraction_lost == 0


def test_reordered_and_duplicate_packets_are_received_not_lost():
    stats = ReceptionStats(8000)
    order = list(range(100))
    rng = random.Random(1)
    for i in range(0, 98, 5):
        order[i], order[i + 1] = order[i + 1], order[i]
    order.append(50)  # a duplicate
    for s in order:
        stats.update(1, s, s * 160, s * 0.02 + rng.uniform(0, 0.001))
    assert stats.expected == 100
    assert stats.cumulative_lost == -1  # RFC 3550: duplicates make 'lost' go negative
