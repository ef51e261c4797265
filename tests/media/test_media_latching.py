"""Media latching (symmetric RTP, strict RTCP, SSRC): a real RtpSession on 127.0.0.1 whose
peer is played by raw UDP sockets, so that a test controls every source address, SSRC,
sequence number and the timing of each packet (and can inject from the latched address)."""

from __future__ import annotations

import asyncio
import socket

import msgspec
import numpy as np
import pytest
import soxr

from tests.media.signals import best_lag, snr_db, speech_like
from tests.media.test_rtp_session import Collector
from theo_ray.media.codecs import create_codec
from theo_ray.media.media_latch import ACCEPT, DROP, SWITCH, MediaLatch
from theo_ray.media.rtcp import (
    ReceiverReport,
    SenderReport,
    build_compound,
    parse_compound,
)
from theo_ray.media.rtp import build_rtp_fast
from theo_ray.media.rtp_session import RtpSession, _bind_even_pair
from theo_ray.media.settings import MediaSettings

SETTINGS = MediaSettings(jitter_min_ms=60.0, rtcp_interval_s=0.3)
HOST = "127.0.0.1"
PCMU = create_codec("PCMU")


class Peer:
    """The far end: an even RTP port and its RTCP port (+1), as raw non-blocking sockets."""

    def __init__(self) -> None:
        self.rtp, self.rtcp = _bind_even_pair(HOST, 0, MediaSettings())
        for sock in (self.rtp, self.rtcp):
            sock.setblocking(False)
        self.address: tuple[str, int] = self.rtp.getsockname()[:2]

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    return sock


def drain(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096))
        except BlockingIOError:
            return out


class Stream:
    """One RTP source: PCMU packets of a speech-like signal, 20 ms each."""

    def __init__(self, ssrc: int, packets: int, seq0: int, ts0: int, seconds_offset: float = 0.0) -> None:
        self.ssrc, self.seq0, self.ts0 = ssrc, seq0, ts0
        pcm = speech_like(8000, seconds_offset + packets * 0.02, top_hz=3400)
        self.pcm = pcm[int(seconds_offset * 8000) :][: packets * 160]
        self.payloads = [PCMU.encode(self.pcm[k * 160 : (k + 1) * 160]) for k in range(packets)]

    def seq(self, k: int) -> int:
        return (self.seq0 + k) & 0xFFFF

    def packet(self, k: int) -> bytes:
        return build_rtp_fast(0, self.seq(k), self.ts0 + 160 * k, self.ssrc, self.payloads[k], k == 0)


def noise_packet(ssrc: int, seq: int, ts: int, seed: int) -> bytes:
    """What an injector sends: loud noise, nothing like the caller's speech."""
    noise = np.random.default_rng(seed).integers(-30000, 30000, 160).astype(np.int16)
    return build_rtp_fast(0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, PCMU.encode(noise), False)


async def paced(count: int, send) -> None:
    """send(k) for k in 0..count-1 on absolute 20 ms deadlines (no drift on a busy loop)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for k in range(count):
        send(k)
        await asyncio.sleep(max(0.0, t0 + (k + 1) * 0.02 - loop.time()))




def assert_intact(frames, reference: np.ndarray) -> None:
    """Frames first..last real one: no gap, and the audio is `reference` (PCMU + resampling)."""
    real = [i for i, f in enumerate(frames) if not f.concealed]
    span = frames[real[0] : real[-1] + 1]
    assert all(not f.concealed for f in span)
    y8 = soxr.resample(np.concatenate([f.pcm for f in span]), 16000, 8000).astype(np.int16)
    lag = best_lag(reference, y8, 800)
    n = reference.size - 400
    assert snr_db(reference[:n], y8[lag : lag + n]) >= 30.0


async def session_for(peer_address: tuple[str, int], settings: MediaSettings = SETTINGS) -> RtpSession:
    session = RtpSession(settings, model_rate=8000)
    await session.start("PCMU", remote=peer_address)
    return session


# ---------------------------------------------------------------- RTCP


async def test_rtcp_from_another_port_is_refused_and_reports_still_go_to_rtp_port_plus_one():
    """RTCP is taken only from the peer's RTCP port (RTP + 1) or its RTP port (rtcp-mux):
    a stranger on another port of the same host, before the RTP latch and after it, is
    refused and counted, and never receives one of our reports."""
    peer, stranger = Peer(), udp_socket()
    b = await session_for(peer.address)
    rtcp_port = (HOST, b.local_address[1] + 1)
    fake_rr = build_compound([ReceiverReport(0xBAD, [])])
    fake_sr = build_compound([SenderReport(0xBAD, 1 << 40, 0, 1, 1, [])])
    try:
        stranger.sendto(fake_rr, rtcp_port)  # before anything from the peer
        stranger.sendto(fake_sr, b.local_address)  # rtcp-mux shape, on the RTP port
        await asyncio.sleep(0.05)
        stream = Stream(0x1111, 10, 100, 1000)
        await paced(10, lambda k: peer.rtp.sendto(stream.packet(k), b.local_address))  # RTP latches
        stranger.sendto(fake_sr, rtcp_port)
        stranger.sendto(fake_rr, rtcp_port)
        peer.rtcp.sendto(build_compound([ReceiverReport(0x1111, [])]), rtcp_port)  # the peer's own
        peer.rtp.sendto(build_compound([ReceiverReport(0x1111, [])]), b.local_address)  # and rtcp-mux
        await asyncio.sleep(1.2)  # a few report intervals (0.15..0.45 s each)
        stats = b.stats()
    finally:
        await b.stop()
    to_stranger, to_peer_rtcp = drain(stranger), drain(peer.rtcp)
    peer.close()
    stranger.close()
    assert stats.drops.foreign_rtcp == 4
    assert stats.rtcp_in == 2 and stats.drops.rtcp_garbage == 0
    assert stats.packets_in == 10 and stats.drops.foreign_address == 0
    assert to_stranger == []  # not one report went to the stranger's port
    assert len(to_peer_rtcp) >= 2  # the reports (and the BYE) went to RTP port + 1
    for datagram in to_peer_rtcp:
        assert parse_compound(datagram)[0].ssrc == b.ssrc


# ---------------------------------------------------------------- RTP address


async def test_packets_from_another_port_of_the_same_host_are_dropped():
    """After the latch, the same host on another port gets nothing in and nothing back:
    its RTP (even with the stream's own SSRC and sequence) and its RTCP are dropped and
    counted, and neither our RTP nor our RTCP goes to it."""
    peer, stranger = Peer(), udp_socket()
    b = await session_for(peer.address)
    got = Collector(b)
    stream = Stream(0x2222, 50, 40000, 5000)
    rtcp_port = (HOST, b.local_address[1] + 1)
    b.enqueue(speech_like(8000, 1.0), "reply", last=True)

    def send(k: int) -> None:
        peer.rtp.sendto(stream.packet(k), b.local_address)
        if k >= 1:
            stranger.sendto(stream.packet(min(k + 1, 49)), b.local_address)  # next seq, real SSRC
            stranger.sendto(noise_packet(0x2222, stream.seq(k + 2), 0, k), b.local_address)
        if k % 10 == 5:
            stranger.sendto(build_compound([ReceiverReport(0x2222, [])]), rtcp_port)

    try:
        await paced(50, send)
        await b.drained(0)
        await asyncio.sleep(0.5)
        stats = b.stats()
    finally:
        await b.stop()
        await got.task
    to_stranger, to_peer = drain(stranger), drain(peer.rtp)
    peer.close()
    stranger.close()
    assert stats.packets_in == 50 and stats.lost == 0 and stats.duplicates == 0
    assert stats.drops.foreign_address == 2 * 49 and stats.drops.foreign_rtcp == 5
    assert b.remote_address == peer.address
    assert to_stranger == [] and len(to_peer) == 50
    assert [f.sequence for f in got.audio()] == [stream.seq(k) for k in range(50)]
    assert_intact(got.frames, stream.pcm)


async def test_reinvite_to_a_new_port_is_not_locked_out_by_the_old_ports_stragglers():
    """A re-INVITE moves the peer to another port; packets still coming from the old one
    re-latch it first, but the new SDP address takes the latch (and the stream) back: the
    new stream is heard, and the old port is dropped from then on."""
    old, new = Peer(), Peer()
    b = await session_for(old.address)
    got = Collector(b)
    a_stream = Stream(0xA, 20, 1000, 100)
    b_stream = Stream(0xB, 20, 7000, 90000)
    try:
        await paced(10, lambda k: old.rtp.sendto(a_stream.packet(k), b.local_address))
        b.update_remote(*new.address)  # re-INVITE
        await paced(3, lambda k: old.rtp.sendto(a_stream.packet(10 + k), b.local_address))  # stragglers

        def send(k: int) -> None:
            new.rtp.sendto(b_stream.packet(k), b.local_address)
            if k < 5:
                old.rtp.sendto(a_stream.packet(13 + k), b.local_address)  # more stragglers

        await paced(20, send)
        await asyncio.sleep(0.2)
        stats = b.stats()
        remote = b.remote_address
    finally:
        await b.stop()
        await got.task
    old.close()
    new.close()
    assert remote == new.address
    assert stats.packets_in == 13 + 20 and stats.drops.foreign_address == 5
    assert [f.sequence for f in got.audio()] == [a_stream.seq(k) for k in range(13)] + [
        b_stream.seq(k) for k in range(20)
    ]


# ---------------------------------------------------------------- SSRC


@pytest.mark.parametrize("delivery", ["arrival", "clock"])
async def test_injected_ssrc_interleaved_with_the_stream_changes_nothing(delivery):
    """An injector on the caller's very address sends one packet of its own SSRC after
    every real one for 2 s (with the sequence number the real stream uses next): every
    one is dropped and counted, the jitter buffer is never reset, and the caller's audio
    comes out whole and in order."""
    peer = Peer()
    b = await session_for(peer.address, msgspec.structs.replace(SETTINGS, inbound_delivery=delivery))
    got = Collector(b)
    real = Stream(0x5EED, 100, 65500, 4_294_960_000)  # both wrap during the call

    def send(k: int) -> None:
        peer.rtp.sendto(real.packet(k), b.local_address)
        peer.rtp.sendto(noise_packet(0xE71, real.seq(k + 1), real.ts0 + 160 * (k + 1), k), b.local_address)

    try:
        await paced(100, send)
        await asyncio.sleep(0.3)
        stats = b.stats()
        resyncs = b._jitter.stats.resyncs
    finally:
        await b.stop()
        await got.task
    peer.close()
    assert stats.drops.foreign_ssrc == 100 and stats.ssrc_switches == 0
    assert resyncs == 0
    assert stats.packets_in == 100 and stats.expected == 100 and stats.lost == 0 and stats.duplicates == 0
    assert [f.sequence for f in got.audio()] == [real.seq(k) for k in range(100)]
    assert_intact(got.frames, real.pcm)


@pytest.mark.parametrize("gap_ms", [0, 300])
async def test_a_sustained_ssrc_change_after_silence_is_followed(gap_ms):
    """A PBX re-anchoring media: the stream stops and another SSRC takes over from the same
    address (at once, or after a pause). A burst of a third SSRC while the stream was live
    is not a switch. The new stream is followed, with none of its audio lost."""
    peer = Peer()
    b = await session_for(peer.address)
    got = Collector(b)
    first = Stream(0x1, 25, 100, 0)
    second = Stream(0x2, 25, 30000, 123456, seconds_offset=0.5)

    def send_first(k: int) -> None:
        peer.rtp.sendto(first.packet(k), b.local_address)
        if k == 12:
            for i in range(10):  # a sustained-looking burst, but the stream is not silent
                peer.rtp.sendto(noise_packet(0xBAD, 5000 + i, 160 * i, i), b.local_address)

    try:
        await paced(25, send_first)
        await asyncio.sleep(gap_ms / 1000.0)
        await paced(25, lambda k: peer.rtp.sendto(second.packet(k), b.local_address))
        await asyncio.sleep(0.3)
        stats = b.stats()
        resyncs = b._jitter.stats.resyncs
    finally:
        await b.stop()
        await got.task
    peer.close()
    assert stats.ssrc_switches == 1 and resyncs == 1
    assert stats.packets_in == 50
    held = 4 if gap_ms >= 200 else 9  # 200 ms of silence: the newcomer's 10th packet switches
    assert 10 + 4 <= stats.drops.foreign_ssrc <= 10 + held + 2  # (+2: loop timing)
    assert [f.sequence for f in got.audio()] == [first.seq(k) for k in range(25)] + [
        second.seq(k) for k in range(25)
    ]


async def test_reinvite_accepts_a_new_ssrc_at_once():
    """After update_remote() the next SSRC is the stream's at its first packet (no silence
    wait); the old SSRC's late packets are then foreign."""
    peer = Peer()
    b = await session_for(peer.address)
    got = Collector(b)
    old = Stream(0x01D, 20, 10, 0)
    new = Stream(0x2E1, 20, 50000, 7777)
    try:
        await paced(10, lambda k: peer.rtp.sendto(old.packet(k), b.local_address))
        b.update_remote(*peer.address)  # re-INVITE, same address
        peer.rtp.sendto(new.packet(0), b.local_address)
        await asyncio.sleep(0.03)
        at_once = b.stats().packets_in
        delivered = [f.sequence for f in got.audio()]

        def send(k: int) -> None:
            peer.rtp.sendto(new.packet(1 + k), b.local_address)
            peer.rtp.sendto(old.packet(10 + k), b.local_address)  # the old stream, still trickling

        await paced(10, send)
        await asyncio.sleep(0.2)
        stats = b.stats()
        resyncs = b._jitter.stats.resyncs
    finally:
        await b.stop()
        await got.task
    peer.close()
    assert at_once == 11 and delivered[-1] == new.seq(0)
    assert stats.packets_in == 21 and stats.drops.foreign_ssrc == 10
    assert stats.ssrc_switches == 0 and resyncs == 1
    assert [f.sequence for f in got.audio()] == [old.seq(k) for k in range(10)] + [new.seq(k) for k in range(11)]


# ---------------------------------------------------------------- MediaLatch alone


def test_latch_never_switches_while_the_stream_keeps_sending():
    latch = MediaLatch(0.2, 5, 20)
    latch.expect(HOST, 4000)
    assert latch.other_ssrc(1, None, 172, 0.0) == ACCEPT
    t = 0.0
    for k in range(2000):
        t += 0.02
        latch.ssrc_heard_at = t  # the stream's packet (RtpSession does this inline)
        for i in range(k % 30):  # bursts of up to 29 injected packets within one tick
            assert latch.other_ssrc(2, None, 172, t + 0.0001 * (i + 1)) == DROP
    assert latch.ssrc == 1


def test_latch_switches_after_silence_and_sustained_packets_and_keeps_them():
    latch = MediaLatch(0.2, 5, 20)
    latch.expect(HOST, 4000)
    latch.other_ssrc(1, "a0", 172, 0.0)
    latch.ssrc_heard_at = 1.0  # the stream's last packet
    verdicts = [latch.other_ssrc(2, f"b{k}", 172, 1.0 + 0.0201 * (k + 1)) for k in range(10)]
    # The 10th packet is the first 200 ms after the stream's last: it switches.
    assert verdicts == [DROP] * 9 + [SWITCH] and latch.ssrc == 2
    assert [p for p, _, _ in latch.take_held()] == [f"b{k}" for k in range(9)]
    # After 1 s of silence, 5 in a row are enough.
    latch.ssrc_heard_at = 2.0
    assert [latch.other_ssrc(3, "c", 172, 3.0 + 0.02 * k) for k in range(5)] == [DROP] * 4 + [SWITCH]
    # Interleaved with the stream, a newcomer never switches, however long the gaps.
    for k in range(100):
        latch.ssrc_heard_at = 10.0 + k
        assert latch.other_ssrc(4, "d", 172, 10.5 + k) == DROP
    assert latch.ssrc == 3
    # Neither does a newcomer interleaved with a third SSRC.
    latch.ssrc_heard_at = 200.0
    assert all(latch.other_ssrc(5 + k % 2, "e", 172, 300.0 + k) == DROP for k in range(50))
    # A re-INVITE takes the next SSRC at once.
    latch.expect(HOST, 4000)
    assert latch.other_ssrc(7, "f", 172, 400.0) == ACCEPT and latch.ssrc == 7


def test_latch_rtcp_addresses():
    latch = MediaLatch(0.2, 5, 20)
    assert not latch.rtcp_accepts(HOST, 4001)  # no SDP yet: nothing
    latch.expect(HOST, 4000)
    assert latch.rtcp_peer == (HOST, 4001)
    assert latch.rtcp_accepts(HOST, 4001) and latch.rtcp_accepts(HOST, 4000)
    assert not latch.rtcp_accepts(HOST, 4003) and not latch.rtcp_accepts("127.0.0.2", 4001)
    latch.latch(HOST, 5000)  # RTP came from another port (NAT, allowed hosts): its + 1
    assert latch.rtcp_peer == (HOST, 5001)
    assert latch.rtcp_accepts(HOST, 5001) and latch.rtcp_accepts(HOST, 5000)
    assert latch.rtcp_accepts(HOST, 4001)  # the SDP's RTCP address stays the peer's
    assert not latch.rtcp_accepts(HOST, 5002) and not latch.rtcp_accepts(HOST, 4999)
    latch.expect(HOST, 4000, rtcp_port=4100)  # a=rtcp
    latch.latch(HOST, 4000)
    assert latch.rtcp_peer == (HOST, 4100) and latch.rtcp_accepts(HOST, 4100)
