"""Theo's own SDP offer, for an INVITE that came without one (delayed offer, RFC 3261
section 13.2.1, and a re-INVITE without SDP): the static-payload codecs of the preference
list plus telephone-event, pointing at the CallActor's RTP socket. The model it writes
(RtpFormat, SdpOrigin) is :mod:`theo_ray.sip.sdp`'s.
"""

from __future__ import annotations

from theo_ray.sip.sdp import NoCommonCodec, RtpFormat, SdpOrigin

# Static RTP payload types of the codecs Theo offers (RFC 3551); telephone-event is dynamic.
_OFFER_FORMATS: dict[str, RtpFormat] = {
    "G722": RtpFormat(9, "G722", 8000),
    "PCMU": RtpFormat(0, "PCMU", 8000),
    "PCMA": RtpFormat(8, "PCMA", 8000),
}
OFFER_TELEPHONE_EVENT_PT = 101


def build_offer(
    preference: list[str], host: str, port: int, origin: SdpOrigin, *, ptime: int = 20, crypto: str = ""
) -> str:
    """Theo's own offer, for an INVITE that came without one (delayed offer, RFC 3261
    section 13.2.1): the 200 OK carries it and the caller's ACK carries the answer.

    Only the static-payload codecs of ``preference`` are offered (L16 has no static
    type at 8/16 kHz), plus telephone-event for DTMF.
    """
    family = "IP6" if ":" in host else "IP4"
    formats = [_OFFER_FORMATS[n.upper()] for n in preference if n.upper() in _OFFER_FORMATS]
    if not formats:
        raise NoCommonCodec(f"nothing to offer from {', '.join(preference)}")
    pts = " ".join(str(f.payload_type) for f in formats)
    lines = [
        "v=0",
        f"o=theo {origin.session_id} {origin.version} IN {family} {host}",
        "s=theo",
        f"c=IN {family} {host}",
        "t=0 0",
        f"m=audio {port} {'RTP/SAVP' if crypto else 'RTP/AVP'} {pts} {OFFER_TELEPHONE_EVENT_PT}",
    ]
    lines += [f"a=rtpmap:{f.payload_type} {f.encoding}/{f.clock_rate}" for f in formats]
    lines += [
        f"a=rtpmap:{OFFER_TELEPHONE_EVENT_PT} telephone-event/8000",
        f"a=fmtp:{OFFER_TELEPHONE_EVENT_PT} 0-16",
        f"a=ptime:{ptime}",
        f"a=rtcp:{port + 1}",
        "a=sendrecv",
        *([f"a=crypto:{crypto}"] if crypto else []),
    ]
    body = "\r\n".join(lines) + "\r\n"
    origin.last_body = body
    return body
