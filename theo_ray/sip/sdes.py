"""SDES (RFC 4568): which SRTP keys a call gets, from the offer's a=crypto lines and the
`sip.srtp` policy; Theo's a=crypto for the answer; whether an INVITE came over TLS.

SDES keys travel in the SDP, so SRTP keyed this way is only as private as the signalling:
an SRTP offer over plain UDP/TCP is refused unless `sip.srtp_over_udp` says otherwise.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Literal

from theo_ray.media.srtp import KEY_SALT_BYTES, SUITE, SrtpKeys, new_key
from theo_ray.sip.numbers import ascii_int
from theo_ray.sip.sdp import SdpOffer

SrtpMode = Literal["off", "optional", "required"]

_VIA = re.compile(r"^(?:via|v)[ \t]*:[ \t]*SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*([A-Za-z]+)", re.IGNORECASE | re.MULTILINE)


class SrtpRefused(Exception):
    """The offer's media security does not meet the policy: answered 488."""


def came_over_tls(invite_text: str) -> bool:
    """The INVITE's topmost Via names TLS: the hop from the PBX to Theo was TLS.

    pjsua2 does not tell the application which transport a request came on, so the
    sender's own Via is taken: one that claims TLS over UDP exposes only its own keys."""
    match = _VIA.search(invite_text)
    return bool(match) and match.group(1).upper() == "TLS"


def _remote_key(value: str) -> tuple[int, bytes] | None:
    """(tag, master key || salt) of one a=crypto value Theo can use, else None."""
    parts = value.split()
    if len(parts) < 3 or parts[1] != SUITE:
        return None
    tag = ascii_int(parts[0])
    if tag is None or tag > 999999999:
        return None
    method, _, key_info = parts[2].partition(":")
    if method != "inline" or len(parts[2].split(";")) != 1:
        return None  # several keys in one line: not used by PBXs, not taken
    key_text, *params = key_info.split("|")
    if any(":" in p for p in params):
        return None  # MKI: libsrtp is keyed without it here
    try:
        key = base64.b64decode(key_text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return (tag, key) if len(key) == KEY_SALT_BYTES else None


def negotiate_srtp(
    offer: SdpOffer, mode: SrtpMode, over_tls: bool, srtp_over_udp: bool, local_key: bytes | None = None
) -> SrtpKeys | None:
    """The call's SRTP keys (None: plain RTP); SrtpRefused when the policy says no.
    `local_key` keeps Theo's key across re-offers (a new one is drawn for a new call)."""
    if not offer.secure:
        if mode == "required":
            raise SrtpRefused("plain RTP offered and sip.srtp is required")
        return None
    if mode == "off":
        raise SrtpRefused("RTP/SAVP offered and sip.srtp is off")
    if not over_tls and not srtp_over_udp:
        raise SrtpRefused("RTP/SAVP offered over plain SIP: its SDES keys would travel in clear "
                          "(SIP over TLS, or sip.srtp_over_udp)")
    for value in offer.crypto:
        found = _remote_key(value)
        if found is not None:
            tag, remote = found
            return SrtpKeys(SUITE, remote_key=remote, local_key=local_key or new_key(), tag=tag)
    raise SrtpRefused(f"no usable a=crypto (Theo answers {SUITE} with an inline key, no MKI)")


def answer_crypto(keys: SrtpKeys) -> str:
    """The value of Theo's a=crypto in the answer (build_answer's `crypto`)."""
    return f"{keys.tag} {keys.suite} inline:{base64.b64encode(keys.local_key).decode()}"


def secure_offer(sdp: str, key: bytes, tag: int = 1) -> str:
    """`sdp` (an offer) with its audio stream made RTP/SAVP and keyed with `key`: the
    caller simulator's SRTP offer (its pjsua writes plain RTP offers)."""
    out: list[str] = []
    in_audio = False
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if not line or (in_audio and line.startswith("a=crypto:")):
            continue  # pjsua's own keys (its SRTP "optional"): only ours are offered
        if line.startswith("m="):
            if in_audio:
                out.append(f"a=crypto:{tag} {SUITE} inline:{base64.b64encode(key).decode()}")
            in_audio = line.startswith("m=audio ")
            if in_audio:
                parts = line.split(" ")
                parts[2] = "RTP/SAVP"
                line = " ".join(parts)
        out.append(line)
    if in_audio:
        out.append(f"a=crypto:{tag} {SUITE} inline:{base64.b64encode(key).decode()}")
    return "\r\n".join(out) + "\r\n"


def keys_from_answer(answer: SdpOffer, local_key: bytes) -> SrtpKeys:
    """The offerer's keys once the answer came back (the caller simulator's side)."""
    for value in answer.crypto:
        found = _remote_key(value)
        if found is not None:
            return SrtpKeys(SUITE, remote_key=found[1], local_key=local_key, tag=found[0])
    raise SrtpRefused("the answer carries no usable a=crypto")
