"""UnservedMethods: the answer pjsip never sends to a request no module of it claims.

pjsip drops an out-of-dialog REGISTER, PUBLISH, NOTIFY, REFER, INFO, UPDATE, PRACK or an
unknown method without a word (sip_endpoint.c: "unhandled by any modules"), and the sender
retransmits it for 32 s; RFC 3261 section 8.2.1 asks for 405 (a method Theo knows but does
not serve, with Allow) or 501 (a method it does not know). The pjsua2 wheel offers no hook
for unclaimed requests, so the gateway answers them from pjsip's log of what it received
(the same RX lines the DatagramRecord reads), over UDP, from a socket of its own on the
gateway's address: the response goes where RFC 3261 section 18.2.2 says (the request's
source, as for rport); only its source port differs from the gateway's. Over TCP a response
must use the request's connection, which only pjsip holds: those stay unanswered.
"""

from __future__ import annotations

import re
import secrets
import socket

from theo_ray.sip.datagram_record import rx_entry
from theo_ray.sip.invite import header_values
from theo_ray.sip.numbers import ascii_int

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO"
# Methods pjsip itself answers (or that get no response by definition).
_CLAIMED = {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "SUBSCRIBE"}
# MESSAGE is answered 200 by pjsua's instant-message module before any application callback
# (the wheel has no switch for it). pjsip logs the request before that module runs, so the
# 405 sent from here leaves first and ends the sender's transaction; pjsua's 200 then
# arrives as a stray response, which RFC 3261 section 17.1.3 has the sender drop.
_KNOWN = {"REGISTER", "PUBLISH", "NOTIFY", "REFER", "INFO", "UPDATE", "PRACK", "MESSAGE"}
_TO_TAG = re.compile(r";\s*tag=", re.IGNORECASE)


def unserved_reply(log_text: str) -> tuple[bytes, tuple[str, int]] | None:
    """The 405/501 for a UDP request pjsip will drop, and where it goes; else None."""
    entry = rx_entry(log_text)
    if entry is None or entry.kind != "Request" or entry.transport != "UDP":
        return None
    method = entry.what.split("/", 1)[0]
    host, _, port_text = entry.source.rpartition(":")
    port = ascii_int(port_text)
    if method in _CLAIMED or port is None or port > 65535:
        return None
    host, message = host.strip("[]"), entry.message
    values = header_values(message)
    if _TO_TAG.search(values.get("to", "")):
        return None  # in a dialog: pjsip answers 481 when there is none
    vias = [line.split(":", 1)[1].strip() for line in _header_lines(message) if line.split(":", 1)[0].strip().lower() in ("via", "v")]
    if not vias or "call-id" not in values or "cseq" not in values or "from" not in values:
        return None  # pjsip could not have answered it either
    top = vias[0]
    if ";rport" in top and "rport=" not in top:
        top = top.replace(";rport", f";received={host};rport={port}", 1)
    code, reason = (405, "Method Not Allowed") if method in _KNOWN else (501, "Not Implemented")
    lines = [f"SIP/2.0 {code} {reason}", f"Via: {top}", *(f"Via: {v}" for v in vias[1:])]
    lines += [
        f"From: {values['from']}",
        f"To: {values.get('to', '')};tag={secrets.token_hex(6)}",
        f"Call-ID: {values['call-id']}",
        f"CSeq: {values['cseq']}",
        f"Allow: {ALLOW}",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), (host, port)


def _header_lines(message: str) -> list[str]:
    head = message.replace("\r\n", "\n").split("\n\n", 1)[0]
    return [line for line in head.split("\n")[1:] if line and line[0] not in " \t"]


def send_reply(data: bytes, destination: tuple[str, int], local_host: str) -> bool:
    family = socket.AF_INET6 if ":" in destination[0] else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((local_host if (":" in local_host) == (family == socket.AF_INET6) else "", 0))
            sock.sendto(data, destination)
    except OSError:
        return False
    return True
