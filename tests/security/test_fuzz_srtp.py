"""Fuzzing what SRTP adds to the edge: a=crypto values in an offer (SDES) and SRTP/SRTCP
datagrams from the peer. An offer's keys are taken or refused with SrtpRefused; a datagram
is unprotected or dropped with one srtp_* counter; nothing else escapes."""

from __future__ import annotations

import base64
import struct

from hypothesis import example, given
from hypothesis import strategies as st

from theo_ray.media.media_stats import DropCounters
from theo_ray.media.srtp import SUITE, SrtpContext, SrtpKeys, new_key
from theo_ray.sip.sdes import SrtpRefused, negotiate_srtp
from theo_ray.sip.sdp import SdpError, parse_offer

OFFER = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\n"
crypto_value = st.one_of(
    st.text(max_size=120).map(lambda t: t.replace("\r", "").replace("\n", "")),
    st.tuples(st.integers(-5, 2**40), st.sampled_from([SUITE, "AES_CM_128_HMAC_SHA1_32", ""]),
              st.binary(max_size=40), st.text("|:^0123456789", max_size=12))
    .map(lambda t: f"{t[0]} {t[1]} inline:{base64.b64encode(t[2]).decode()}{t[3]}"),
)


@given(st.lists(crypto_value, max_size=4))
@example([f"1 {SUITE} inline:{base64.b64encode(bytes(30)).decode()}|2^31|1:4"])
def test_crypto_lines_are_taken_or_refused(values):
    body = OFFER + "".join(f"a=crypto:{v}\r\n" for v in values)
    try:
        offer = parse_offer(body)
    except SdpError:
        return
    try:
        keys = negotiate_srtp(offer, "optional", over_tls=True, srtp_over_udp=False)
    except SrtpRefused:
        return
    assert keys is not None and len(keys.remote_key) == 30


_drops = DropCounters()
_context = SrtpContext(SrtpKeys(SUITE, remote_key=new_key(), local_key=new_key()), _drops)
srtp_like = st.one_of(
    st.binary(max_size=200),
    st.tuples(st.integers(0, 0xFFFF), st.binary(min_size=10, max_size=200))
    .map(lambda t: struct.pack("!BBHII", 0x80, 0, t[0], 0, 7) + t[1]),
)


@given(srtp_like, st.booleans())
def test_any_datagram_is_unprotected_or_counted(data, rtcp):
    before = _drops.srtp_auth + _drops.srtp_replay + _drops.srtp_other
    out = (_context.unprotect_rtcp if rtcp else _context.unprotect)(data)
    after = _drops.srtp_auth + _drops.srtp_replay + _drops.srtp_other
    assert (out is None and after == before + 1) or (out is not None and after == before)
