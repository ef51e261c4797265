"""InviteScreen: what the gateway does with a new INVITE, decided before anything opens.

A pure function of the raw message pjsip received, its source and the gateway's state, so
every odd INVITE the SIP torture catalogue sends is answered by one tested rule here and
no CallActor opens for an offer that cannot be used. The body is read the way pjsip reads
it (``Content-Length`` bounds it, no ``Content-Type`` means no body), so Theo and pjsua
never disagree on whether the INVITE carried an offer: that disagreement is what let an
SDP without a ``Content-Type`` reach ``Call.answer`` with an answer to an offer pjsua
never saw, and crash the process.
"""

from __future__ import annotations

import ipaddress

import msgspec

from theo_ray.sip.invite import InviteInfo, PeerFilter, header_values, parse_invite, source_host
from theo_ray.sip.numbers import ascii_int
from theo_ray.media.srtp import SrtpKeys
from theo_ray.sip.sdes import SrtpMode, SrtpRefused, came_over_tls, negotiate_srtp
from theo_ray.sip.sdp import NoCommonCodec, RtpFormat, SdpError, SdpOffer, choose_codec, parse_offer

# pjsip's compile-time PJSIP_MAX_PKT_LEN in the pjsua2-python wheel: a longer UDP datagram
# reaches the application cut to exactly this many bytes (measured: 4000).
PJSIP_MAX_PKT_LEN = 4000
# pjmedia's compile-time limit of m= sections: a longer answer would be cut (RFC 3264
# section 6 wants one answer line per offered line).
PJMEDIA_MAX_SDP_MEDIA = 16
_SINGLE_VALUE = {"call-id": "call-id", "i": "call-id", "from": "from", "f": "from", "to": "to", "t": "to",
                 "cseq": "cseq", "max-forwards": "max-forwards", "content-length": "content-length",
                 "l": "content-length", "content-type": "content-type", "c": "content-type"}


class Refusal(msgspec.Struct, frozen=True):
    """A final response to send instead of opening a call."""

    code: int
    counter: str  # GatewayStats refusal counter this refusal adds to
    detail: str
    headers: dict[str, str] = msgspec.field(default_factory=dict)


class Admitted(msgspec.Struct, frozen=True):
    """An INVITE Theo will answer: with an answer to ``offer``, or its own offer when the
    INVITE carried none (delayed offer: ``offer`` and ``codec`` are None)."""

    info: InviteInfo
    offer: SdpOffer | None
    codec: RtpFormat | None
    srtp: SrtpKeys | None = None  # SRTP keys of the answer (sdes.negotiate_srtp)

    @property
    def delayed_offer(self) -> bool:
        return self.offer is None


def _repeated_single_headers(text: str) -> str:
    """The first single-value header (RFC 3261 section 20) that appears twice, else ""."""
    head = text.partition("\r\n\r\n")[0] if "\r\n\r\n" in text else text.partition("\n\n")[0]
    seen: set[str] = set()
    for line in head.replace("\r\n", "\n").split("\n")[1:]:
        if not line or line[0] in " \t":
            continue
        name = _SINGLE_VALUE.get(line.partition(":")[0].strip().lower())
        if name is None:
            continue
        if name in seen:
            return name
        seen.add(name)
    return ""


def message_body(text: str) -> tuple[str, int | None]:
    """(body as pjsip sees it, the Content-Length value or None when absent/unreadable)."""
    head, sep, body = text.partition("\r\n\r\n")
    if not sep:
        head, sep, body = text.partition("\n\n")
    raw_length = header_values(text).get("content-length")
    if raw_length is None:
        return body, None
    length = ascii_int(raw_length.strip())  # pjsip reads ASCII digits only
    if length is None:
        return body, None
    encoded = body.encode("utf-8", "surrogateescape")
    return encoded[:length].decode("utf-8", "replace"), length


def screen_invite(
    text: str,
    source: str,
    peers: PeerFilter,
    preference: list[str],
    *,
    media_family: int = 4,
    free_slots: int = 1,
    retry_after_s: int = 2,
    srtp: SrtpMode = "off",
    srtp_over_udp: bool = False,
) -> Refusal | Admitted:
    """The rule for one initial INVITE; ``source`` is pjsip's "host:port" string."""
    if not peers.allows(source_host(source)):
        return Refusal(403, "rejected_403", f"{source} is not an allowed peer")
    values = header_values(text)
    method = (text.split(None, 1) or [""])[0]
    if method != "INVITE":
        # pjsip matches method names without case; RFC 3261 section 7.1 says they are
        # case-sensitive, so "invite" is a method Theo does not implement.
        return Refusal(501, "malformed_invite", f"method {method[:20]!r} is not INVITE")
    repeated = _repeated_single_headers(text)
    if repeated:
        # pjsip keeps the last of a repeated header, Theo's reader the first: refuse rather
        # than act on a request the two read differently (RFC 4475 section 3.1.2.19).
        return Refusal(400, "malformed_invite", f"repeated single-value header {repeated}")
    body, length = message_body(text)
    if len(text.encode("utf-8", "surrogateescape")) >= PJSIP_MAX_PKT_LEN or (
        length is not None and len(body.encode("utf-8", "surrogateescape")) < length
    ):
        # Cut by the transport (UDP datagram over pjsip's buffer) or a lying length:
        # RFC 3261 section 18.1.1 asks a client with a large request to use TCP.
        return Refusal(513, "too_large", f"{len(text)} bytes reached the application")
    if free_slots <= 0:
        return Refusal(
            503, "rejected_full", "every call slot of this shard is taken",
            {"Retry-After": str(retry_after_s)},
        )
    forwards = values.get("max-forwards", "70").strip()
    if forwards == "0":
        return Refusal(483, "malformed_invite", "Max-Forwards: 0")
    encoding = values.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return Refusal(415, "unsupported_body", f"Content-Encoding {encoding[:30]!r}",
                       {"Accept-Encoding": "identity"})
    content_type = values.get("content-type", "").split(";", 1)[0].strip().lower()
    if body.strip() and not content_type:
        return Refusal(400, "malformed_invite", "a body without Content-Type (RFC 3261 section 7.4.1)")
    info = parse_invite(text)
    if not info.call_id:
        return Refusal(400, "malformed_invite", "no Call-ID")
    if not body.strip():
        if srtp == "required":  # Theo's own offer is plain RTP
            return Refusal(488, "srtp_refused", "no offer (delayed offer) and sip.srtp is required")
        return Admitted(info, None, None)  # delayed offer
    if content_type != "application/sdp":
        return Refusal(
            415, "unsupported_body", f"Content-Type {content_type[:40]!r}",
            {"Accept": "application/sdp"},
        )
    try:
        offer = parse_offer(body)
        codec = choose_codec(offer, preference)
    except NoCommonCodec as exc:
        return Refusal(488, "no_common_codec", str(exc))
    except SdpError as exc:
        code = 488 if exc.reason in ("unsupported_profile", "no_audio") else 400
        return Refusal(code, "malformed_sdp", str(exc))
    if len(offer.sections) > PJMEDIA_MAX_SDP_MEDIA:
        return Refusal(488, "malformed_sdp", f"{len(offer.sections)} media sections (at most {PJMEDIA_MAX_SDP_MEDIA})")
    family = ipaddress.ip_address(offer.connection_host).version
    if family != media_family:
        return Refusal(488, "malformed_sdp", f"media on IPv{family}; Theo's RTP is IPv{media_family}")
    try:
        keys = negotiate_srtp(offer, srtp, came_over_tls(text), srtp_over_udp)
    except SrtpRefused as exc:
        return Refusal(488, "srtp_refused", str(exc))
    return Admitted(info, offer, codec, keys)
