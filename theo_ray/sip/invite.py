"""What the gateway reads from a raw INVITE: session id, caller ID, Call-ID, SDP body, source.

pjsua2 hands the application the whole message text (``SipRxData.wholeMsg``) but no
header accessors, so the few headers Theo needs are read here (compact forms included).
"""

from __future__ import annotations

import ipaddress
import re

import msgspec

from theo_ray.sip.numbers import ascii_int

SESSION_HEADER = "X-Theo-Session"

# RFC 3261 section 7.3.3 compact header names we may meet.
_COMPACT = {
    "f": "from",
    "i": "call-id",
    "c": "content-type",
    "l": "content-length",
    "t": "to",
    "x": "session-expires",
}
_NAME_ADDR = re.compile(r'^\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<token>[^<]*?))\s*<(?P<uri>[^>]*)>')


class InviteInfo(msgspec.Struct, frozen=True):
    call_id: str
    session_header: str  # X-Theo-Session value, "" when absent
    caller_id: str  # user part of the From URI
    caller_name: str  # From display name
    content_type: str
    body: str
    session_expires: int = 0  # RFC 4028 Session-Expires delta-seconds, 0 when absent


def _split_message(text: str) -> tuple[list[str], str]:
    head, sep, body = text.partition("\r\n\r\n")
    if not sep:
        head, _, body = text.partition("\n\n")
    lines = head.replace("\r\n", "\n").split("\n")
    # Unfold continuation lines (RFC 3261 section 7.3.1).
    headers: list[str] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            headers[-1] += " " + line.strip()
        elif line:
            headers.append(line)
    return headers, body


def header_values(text: str) -> dict[str, str]:
    """First value of each header, by lower-case full name."""
    headers, _ = _split_message(text)
    values: dict[str, str] = {}
    for line in headers:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        key = _COMPACT.get(key, key)
        values.setdefault(key, value.strip())
    return values


def printable(value: str) -> str:
    """``value`` as valid UTF-8 text: pjsua2 hands non-UTF-8 bytes over as surrogates, which
    no encoder (msgpack, JSON, a log file) accepts; they become U+FFFD."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def parse_invite(text: str) -> InviteInfo:
    values = header_values(text)
    _, body = _split_message(text)
    display, user = parse_from(values.get("from", ""))
    expires = values.get("session-expires", "").split(";", 1)[0].strip()
    return InviteInfo(
        call_id=printable(values.get("call-id", "")),
        session_header=printable(values.get(SESSION_HEADER.lower(), "")),
        caller_id=printable(user),
        caller_name=printable(display),
        content_type=values.get("content-type", "").split(";", 1)[0].strip().lower(),
        body=body,
        session_expires=ascii_int(expires) or 0,
    )


def parse_from(value: str) -> tuple[str, str]:
    """(display name, user part) of a From/To header value; ("", "") if unreadable."""
    match = _NAME_ADDR.match(value)
    if match:
        display = match.group("quoted")
        if display is None:
            display = (match.group("token") or "").strip()
        else:
            display = re.sub(r"\\(.)", r"\1", display)
        uri = match.group("uri")
    else:
        display, uri = "", value.split(";", 1)[0].strip()
    scheme, _, rest = uri.partition(":")
    if scheme.lower() not in ("sip", "sips", "tel"):
        return display, ""
    user = rest.split("@", 1)[0] if "@" in rest else (rest if scheme.lower() == "tel" else "")
    return display, user.split(";", 1)[0]


def source_host(address: str) -> str:
    """Host of pjsip's "host:port" / "[v6]:port" source address string."""
    if address.startswith("["):
        return address[1 : address.find("]")]
    host, _, _ = address.rpartition(":")
    return host or address


class PeerFilter:
    """Which source addresses may open calls (the PBXs); IPs or CIDR networks."""

    def __init__(self, allowed: list[str]) -> None:
        self._networks = [ipaddress.ip_network(a, strict=False) for a in allowed]

    def allows(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)
