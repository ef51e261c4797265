"""SDP offer parsing and the audio answer Theo sends back (RFC 4566 / RFC 3264), no pjsua2.

The gateway never lets pjsua describe media: every answer it sends is built here from the
PBX's offer and the CallActor's RTP socket. Hand-written because only the audio section
matters and the Python SDP libraries either come with a WebRTC stack (aiortc) or are
unmaintained ports; this module stays small and fully tested instead. It owns the SDP
model (offer, formats, errors), parsing, codec choice and the answer; Theo's own offer for
a delayed-offer INVITE is :mod:`theo_ray.sip.sdp_offer`, re-pointing an SDP's audio at
another RTP socket :mod:`theo_ray.sip.sdp_retarget`.
"""

from __future__ import annotations

import ipaddress

import msgspec

from theo_ray.media.direction import DIRECTIONS, Direction
from theo_ray.sip.numbers import ascii_int

# RFC 3551 static payload types we may meet in an offer without an rtpmap line.
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),  # RTP clock 8000 by RFC 3551 although the audio is 16 kHz
    10: ("L16", 44100, 2),
    11: ("L16", 44100, 1),
    18: ("G729", 8000, 1),
}

# Codecs Theo's media plane decodes, with the RTP clock rates it accepts for each.
SUPPORTED_CLOCK_RATES: dict[str, frozenset[int]] = {
    "G722": frozenset({8000}),
    "PCMU": frozenset({8000}),
    "PCMA": frozenset({8000}),
    "L16": frozenset({8000, 16000}),
}

_MAX_SDP_BYTES = 16384


class SdpError(Exception):
    """An SDP body Theo cannot answer; ``reason`` is a short machine-readable cause."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"SDP {self.reason}: {self.detail}" if self.detail else f"SDP {self.reason}"


class NoCommonCodec(SdpError):
    """Well-formed offer, but none of its audio codecs is one Theo decodes (answer 488)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("no_common_codec", detail)

    def __reduce__(self):  # keep the one-argument constructor picklable across Ray
        return (NoCommonCodec, (self.detail,))


class RtpFormat(msgspec.Struct, frozen=True):
    """One payload type of an m= line with its rtpmap/fmtp."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1
    fmtp: str = ""


class MediaSection(msgspec.Struct, frozen=True):
    """An m= section kept only so that the answer can mirror every offered stream."""

    kind: str
    port: int
    proto: str
    formats: list[str]


class SdpOffer(msgspec.Struct, frozen=True):
    """The parts of an offer the answer and the media plane need (first live audio stream)."""

    connection_host: str
    audio_port: int
    audio_index: int  # position of that audio stream among all m= sections
    formats: list[RtpFormat]
    telephone_events: list[RtpFormat]
    direction: Direction
    ptime: int | None
    sections: list[MediaSection]
    # RTP/SAVP (SRTP) offered, and the audio stream's a=crypto values (SDES, RFC 4568),
    # read by theo_ray/sip/sdes.py.
    secure: bool = False
    crypto: list[str] = []

    def telephone_event_for(self, codec: RtpFormat) -> RtpFormat | None:
        """The offer's telephone-event type at the codec's RTP clock, else its first one."""
        for event in self.telephone_events:
            if event.clock_rate == codec.clock_rate:
                return event
        return self.telephone_events[0] if self.telephone_events else None

    @property
    def on_hold(self) -> bool:
        """RFC 3264 hold (sendonly/inactive) or the older RFC 2543 c=0.0.0.0 form."""
        return self.direction in ("sendonly", "inactive") or self.connection_host in (
            "0.0.0.0",
            "::",
        )


class SdpOrigin(msgspec.Struct):
    """o= line state kept per call: the version goes up with every changed answer."""

    session_id: int
    version: int = 1
    last_body: str = ""


def parse_offer(text: str) -> SdpOffer:
    """Parse an SDP offer; raise SdpError for anything Theo cannot answer."""
    if not text or not text.strip():
        raise SdpError("missing", "no SDP offer in the request")
    if len(text) > _MAX_SDP_BYTES:
        raise SdpError("too_large", f"{len(text)} bytes")
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines or lines[0].strip() != "v=0":
        raise SdpError("syntax", "first line must be v=0")

    session_conn = ""
    session_dir: str | None = None
    sections: list[dict] = []
    for raw in lines:
        line = raw.strip()
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SdpError("syntax", f"bad line {line[:40]!r}")
        key, value = line[0], line[2:]
        if key == "m":
            sections.append(_parse_m_line(value))
            continue
        target = sections[-1] if sections else None
        if key == "c":
            host = _parse_connection(value)
            if target is None:
                session_conn = host
            else:
                target["conn"] = host
        elif key == "a":
            name, _, attr_value = value.partition(":")
            if name in DIRECTIONS:
                if target is None:
                    session_dir = name
                else:
                    target["dir"] = name
            elif target is not None and name in ("rtpmap", "fmtp", "ptime", "crypto"):
                target["attrs"].append((name, attr_value))

    if not any(s["kind"] == "audio" for s in sections):
        raise SdpError("no_audio", "offer has no m=audio line")
    for index, section in enumerate(sections):
        if section["kind"] == "audio" and section["port"] != 0:
            return _audio_offer(index, section, sections, session_conn, session_dir)
    raise SdpError("no_audio", "every audio stream is disabled (port 0)")


def _parse_m_line(value: str) -> dict:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError("syntax", f"short m= line {value[:40]!r}")
    kind, port_text, proto, formats = parts[0], parts[1], parts[2], parts[3:]
    port_text = port_text.split("/", 1)[0]
    port = ascii_int(port_text)
    if port is None or port > 65535:
        raise SdpError("bad_port", port_text[:20])
    return {
        "kind": kind,
        "port": port,
        "proto": proto,
        "formats": formats,
        "conn": "",
        "dir": None,
        "attrs": [],
    }


def _parse_connection(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError("bad_connection", value[:60])
    host = parts[2].split("/", 1)[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # Hostnames are legal SDP but a PBX always sends addresses; refusing keeps
        # DNS lookups (and their latency) out of call setup.
        raise SdpError("bad_connection", f"not an IP address: {host[:60]}") from None
    return host


def _audio_offer(
    index: int, section: dict, sections: list[dict], session_conn: str, session_dir: str | None
) -> SdpOffer:
    secure = section["proto"] == "RTP/SAVP"
    if not (secure or section["proto"].startswith("RTP/AVP")):
        raise SdpError("unsupported_profile", section["proto"])
    host = section["conn"] or session_conn
    if not host:
        raise SdpError("bad_connection", "no c= line for the audio stream")
    rtpmaps: dict[int, tuple[str, int, int]] = {}
    fmtps: dict[int, str] = {}
    ptime: int | None = None
    crypto: list[str] = []
    for name, attr in section["attrs"]:
        if name == "crypto":
            crypto.append(attr)
            continue
        if name == "ptime":
            ptime = _parse_ptime(attr)
            continue
        pt_text, _, rest = attr.partition(" ")
        pt = ascii_int(pt_text)
        if pt is None:
            raise SdpError("syntax", f"bad {name} {attr[:40]!r}")
        if name == "rtpmap":
            rtpmaps[pt] = _parse_rtpmap(rest)
        else:
            fmtps[pt] = rest.strip()

    formats: list[RtpFormat] = []
    telephone_events: list[RtpFormat] = []
    for fmt in section["formats"]:
        pt = ascii_int(fmt)
        if pt is None or pt > 127:
            raise SdpError("syntax", f"bad payload type {fmt[:10]!r}")
        mapping = rtpmaps.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
        if mapping is None:
            continue  # dynamic type without rtpmap: unusable, but not fatal for the offer
        encoding, rate, channels = mapping
        rtp_format = RtpFormat(pt, encoding, rate, channels, fmtps.get(pt, ""))
        if encoding.lower() == "telephone-event":
            telephone_events.append(rtp_format)
        else:
            formats.append(rtp_format)
    if not formats:
        raise SdpError("syntax", "audio stream lists no known payload type")

    direction = section["dir"] or session_dir or "sendrecv"
    return SdpOffer(
        connection_host=host,
        audio_port=section["port"],
        audio_index=index,
        formats=formats,
        telephone_events=telephone_events,
        direction=direction,  # type: ignore[arg-type]
        ptime=ptime,
        sections=[
            MediaSection(s["kind"], s["port"], s["proto"], list(s["formats"])) for s in sections
        ],
        secure=secure,
        crypto=crypto,
    )


def _parse_ptime(attr: str) -> int:
    """a=ptime in milliseconds ("20", or "20.0" as some phones write it)."""
    whole, _, fraction = attr.strip().partition(".")
    value = ascii_int(whole)
    if value is None or (fraction and ascii_int(fraction) is None):
        raise SdpError("syntax", f"bad ptime {attr[:20]!r}")
    return value


def _parse_rtpmap(rest: str) -> tuple[str, int, int]:
    parts = rest.strip().split("/")
    rate = ascii_int(parts[1]) if len(parts) >= 2 else None
    if len(parts) < 2 or not parts[0] or rate is None:
        raise SdpError("syntax", f"bad rtpmap {rest[:40]!r}")
    channels = 1
    if len(parts) > 2:
        count = ascii_int(parts[2])
        if count is None:
            raise SdpError("syntax", f"bad rtpmap channels {rest[:40]!r}")
        channels = count
    return parts[0], rate, channels


def choose_codec(offer: SdpOffer, preference: list[str]) -> RtpFormat:
    """First codec of ``preference`` (names like "G722") that the offer carries, mono only.

    Raises NoCommonCodec when nothing matches.
    """
    for wanted in preference:
        name = wanted.upper()
        rates = SUPPORTED_CLOCK_RATES.get(name)
        if rates is None:
            continue
        candidates = [
            f
            for f in offer.formats
            if f.encoding.upper() == name and f.clock_rate in rates and f.channels == 1
        ]
        if candidates:
            # For L16 the widest band the offer has; for the others there is one rate.
            return max(candidates, key=lambda f: f.clock_rate)
    offered = ", ".join(f"{f.encoding}/{f.clock_rate}" for f in offer.formats)
    raise NoCommonCodec(f"offered {offered}; accepted {', '.join(preference)}")


def answer_direction(offer: SdpOffer) -> Direction:
    """RFC 3264 section 6.1 answer direction for a party that wants to send and receive.

    sendonly (a hold) -> recvonly; inactive -> inactive (RFC 3264 allows nothing else);
    recvonly -> sendonly; an old-style hold (c=0.0.0.0) -> recvonly; else sendrecv.
    """
    if offer.direction == "sendonly":
        return "recvonly"
    if offer.direction == "inactive":
        return "inactive"
    if offer.direction == "recvonly":
        return "sendonly"
    if offer.on_hold:
        return "recvonly"
    return "sendrecv"


def build_answer(
    offer: SdpOffer,
    codec: RtpFormat,
    host: str,
    port: int,
    origin: SdpOrigin,
    *,
    ptime: int = 20,
    crypto: str = "",
) -> str:
    """Whole answer SDP: our audio stream at ``host:port`` and every other stream rejected.
    ``crypto`` (the value of Theo's a=crypto, sdes.answer_crypto) makes it RTP/SAVP.

    ``origin`` is the call's o= state: its version is bumped only when the body changes,
    as RFC 3264 section 8 asks, so a PBX can tell a real change from a refresh.
    """
    family = "IP6" if ":" in host else "IP4"
    audio: list[str] = [f"m=audio {port} {'RTP/SAVP' if crypto else 'RTP/AVP'} {codec.payload_type}"]
    event = offer.telephone_event_for(codec)
    if event is not None:
        audio[0] += f" {event.payload_type}"
    audio.append(f"c=IN {family} {host}")
    channels = f"/{codec.channels}" if codec.channels != 1 else ""
    audio.append(f"a=rtpmap:{codec.payload_type} {codec.encoding}/{codec.clock_rate}{channels}")
    if codec.fmtp:
        audio.append(f"a=fmtp:{codec.payload_type} {codec.fmtp}")
    if event is not None:
        audio.append(f"a=rtpmap:{event.payload_type} telephone-event/{event.clock_rate}")
        audio.append(f"a=fmtp:{event.payload_type} {event.fmtp or '0-16'}")
    audio.append(f"a=ptime:{ptime}")
    audio.append(f"a=rtcp:{port + 1}")  # the CallActor binds RTCP on the next port
    audio.append(f"a={answer_direction(offer)}")
    if crypto:
        audio.append(f"a=crypto:{crypto}")

    media_lines: list[str] = []
    for index, section in enumerate(offer.sections):
        if index == offer.audio_index:
            media_lines.extend(audio)
        else:
            media_lines.append(
                f"m={section.kind} 0 {section.proto} {section.formats[0] if section.formats else '0'}"
            )
    body_tail = "\r\n".join([f"c=IN {family} {host}", "t=0 0", *media_lines])
    if body_tail != origin.last_body:
        if origin.last_body:
            origin.version += 1
        origin.last_body = body_tail
    head = [
        "v=0",
        f"o=theo {origin.session_id} {origin.version} IN {family} {host}",
        "s=theo",
    ]
    return "\r\n".join([*head, body_tail]) + "\r\n"
