"""DialogRelease: free pjsua's slot of a 200 OK that was never ACKed, now.

pjsua keeps a call slot until its INVITE session really ends. For a 2xx never ACKed that is
Timer H (32 s) of 200 OK retransmissions and then a BYE nobody answers (32 s more): hanging
up only reports DISCONNECTED to the application. With four slots per process, four INVITEs
nobody ACKs would keep a shard answering 486 for over a minute. The pjsua2 wheel exposes no
way to terminate a session without that BYE, so the gateway ends the dialog through its own
stack: it sends itself the BYE the caller would send (RFC 3261 allows the caller to end a
dialog with BYE at any time after the 2xx); pjsip answers it and frees the slot at once.

Theo's To tag is not in pjsua2's CallInfo, so it is read from pjsip's own log line of the
200 OK it sent (``local_tag_from_tx``).

The same record ends a confirmed dialog whose shard process died (`callee_bye`): the shard
tells the gateway each dialog it confirms (`DialogRecord`), and when the process dies with
its pjsip state, the gateway sends the PBX the BYE Theo would have sent, so the caller's leg
ends now (the PBX's dialplan then takes the caller to a human) instead of after the PBX's
RTP timeout.
"""

from __future__ import annotations

import re
import socket
import time
import uuid

import msgspec

from theo_ray.sip.invite import header_values
from theo_ray.sip.numbers import ascii_int

_TX_2XX = re.compile(r"TX \d+ bytes Response msg 2\d\d/INVITE/cseq=\d+")
_TO_TAG = re.compile(r"^(?:to|t)\s*:.*;\s*tag=([^;\s>]+)", re.IGNORECASE | re.MULTILINE)
_CALL_ID = re.compile(r"^(?:call-id|i)\s*:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


def local_tag_from_tx(log_text: str) -> tuple[str, str] | None:
    """(Call-ID, Theo's To tag) from pjsip's log of a 2xx it sent to an INVITE."""
    first, _, rest = log_text.partition("\n")
    if "TX " not in first[:80] or not _TX_2XX.search(first):
        return None
    tag = _TO_TAG.search(rest)
    call_id = _CALL_ID.search(rest)
    if tag is None or call_id is None:
        return None
    return call_id.group(1), tag.group(1)


def release_bye(invite_text: str, local_tag: str, uri: str, via_host: str, via_port: int) -> bytes:
    """The BYE the caller of ``invite_text`` would send to end the dialog, from ``via``."""
    values = header_values(invite_text)
    # An empty or odd CSeq (it was screened, but only for what pjsip needs) must not raise.
    cseq = ascii_int((values.get("cseq", "").split() or ["1"])[0])
    number = cseq + 1 if cseq is not None and cseq < 2**31 - 1 else 2
    lines = [
        f"BYE {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP {via_host}:{via_port};branch=z9hG4bK-theo-{uuid.uuid4().hex[:16]};rport",
        "Max-Forwards: 70",
        f"From: {values.get('from', '')}",
        f"To: {values.get('to', '')};tag={local_tag}",
        f"Call-ID: {values.get('call-id', '')}",
        f"CSeq: {number} BYE",
        "Reason: SIP;cause=408;text=\"ACK never came\"",
        "Content-Length: 0",
    ]
    # pjsua2 hands non-UTF-8 bytes over as surrogates: they go back out as the same bytes
    # (the BYE must repeat the INVITE's Call-ID and tags exactly).
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def send_release(invite_text: str, local_tag: str, host: str, port: int) -> bool:
    """Send the release BYE to the gateway's own UDP port at ``host:port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((host, 0))
            via_port = sock.getsockname()[1]
            uri = f"sip:theo@[{host}]:{port}" if family == socket.AF_INET6 else f"sip:theo@{host}:{port}"
            sock.sendto(release_bye(invite_text, local_tag, uri, host, via_port), (host, port))
    except OSError:
        return False
    return True


# Above any CSeq pjsip may have used in the dialog (its session refreshes), below 2**31.
CALLEE_BYE_CSEQ = 2**31 - 1000


class DialogRecord(msgspec.Struct, frozen=True):
    """What Theo's own BYE needs once the process holding the dialog is gone."""

    session_id: str
    invite_text: str
    local_tag: str
    peer_host: str  # where the INVITE came from (the PBX)
    peer_port: int


def _all_values(text: str, name: str) -> list[str]:
    head = text.split("\r\n\r\n", 1)[0].replace("\r\n", "\n")
    return [line.partition(":")[2].strip() for line in head.split("\n")
            if line.partition(":")[0].strip().lower() == name]


def callee_bye(dialog: DialogRecord, via_host: str, via_port: int, reason: str) -> bytes:
    """The BYE Theo (the callee) sends to end ``dialog``: From/To swapped, the caller's
    Contact as the target, the INVITE's Record-Route as the route set."""
    values = header_values(dialog.invite_text)
    contact = values.get("contact", "")
    target = re.search(r"<([^>]+)>", contact)
    uri = target.group(1) if target else contact.split(";", 1)[0].strip()
    lines = [
        f"BYE {uri or 'sip:' + dialog.peer_host} SIP/2.0",
        f"Via: SIP/2.0/UDP {via_host}:{via_port};branch=z9hG4bK-theo-{uuid.uuid4().hex[:16]};rport",
        "Max-Forwards: 70",
        f"From: {values.get('to', '')};tag={dialog.local_tag}",
        f"To: {values.get('from', '')}",
        f"Call-ID: {values.get('call-id', '')}",
        f"CSeq: {CALLEE_BYE_CSEQ} BYE",
        *(f"Route: {route}" for route in _all_values(dialog.invite_text, "record-route")),
        f"Reason: {reason}",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def send_callee_bye(dialog: DialogRecord, local_host: str, reason: str, repeats: int = 2) -> bool:
    """Send Theo's BYE for ``dialog`` to the PBX from an ephemeral port on ``local_host``,
    twice 0.3 s apart (UDP: a lost BYE would leave the caller to the RTP timeout); the
    answer is not awaited (a second BYE gets a harmless 481)."""
    family = socket.AF_INET6 if ":" in dialog.peer_host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((local_host, 0))
            data = callee_bye(dialog, local_host, sock.getsockname()[1], reason)
            for n in range(repeats):
                if n:
                    time.sleep(0.3)
                sock.sendto(data, (dialog.peer_host, dialog.peer_port))
    except OSError:
        return False
    return True
