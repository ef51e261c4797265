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
from theo_ray.sip.sdp import NoCommonCodec, RtpFormat, SdpError, SdpOffer, choose_codec, parse_offer

# pjsip's compile-time PJSIP_MAX_PKT_LEN in the pjsua2-python wheel: a longer UDP datagram
# reaches the application cut to exactly this many bytes (measured: 4000).
PJSIP_MAX_PKT_LEN = 4000


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

    @property
    def delayed_offer(self) -> bool:
        return self.offer is None


def message_body(text: str) -> tuple[str, int | None]:
    """(body as pjsip sees it, the Content-Length value or None when absent/unreadable)."""
    head, sep, body = text.partition("\r\n\r\n")
    if not sep:
        head, sep, body = text.partition("\n\n")
    raw_length = header_values(text).get("content-length")
    if raw_length is None:
        return body, None
    try:
        length = int(raw_length.strip())
    except ValueError:
        return body, None
    if length < 0:
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
) -> Refusal | Admitted:
    """The rule for one initial INVITE; ``source`` is pjsip's "host:port" string."""
    if not peers.allows(source_host(source)):
        return Refusal(403, "rejected_403", f"{source} is not an allowed peer")
    values = header_values(text)
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
    content_type = values.get("content-type", "").split(";", 1)[0].strip().lower()
    if body.strip() and not content_type:
        return Refusal(400, "malformed_invite", "a body without Content-Type (RFC 3261 section 7.4.1)")
    info = parse_invite(text)
    if not info.call_id:
        return Refusal(400, "malformed_invite", "no Call-ID")
    if not body.strip():
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
    family = ipaddress.ip_address(offer.connection_host).version
    if family != media_family:
        return Refusal(488, "malformed_sdp", f"media on IPv{family}; Theo's RTP is IPv{media_family}")
    return Admitted(info, offer, codec)
