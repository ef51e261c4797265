"""The SIP caller's configuration and the pipe protocol between SipCaller and its child process.

:class:`CallerSettings` travels to the child as JSON on its command line; :class:`Request`
(one :data:`Command`) goes down the child's stdin and :data:`Message` (replies, the ready
signal, :class:`CallerEvent`) comes back on its stdout, each a msgpack frame behind a
:data:`FRAME` length prefix. Both sides (:mod:`theo_ray.sim.sip_caller`,
:mod:`theo_ray.sim.sip_caller_agent`) import it; it imports neither.
"""

from __future__ import annotations

import struct
from typing import Literal

import msgspec

MediaMode = Literal["pjsua", "external"]
EventKind = Literal[
    "progress",  # 1xx with a status (180 Ringing, 183)
    "answered",  # 200 OK to the INVITE; sdp/remote_* filled
    "reanswered",  # 2xx to a later re-INVITE (hold/unhold); sdp/direction filled
    "confirmed",  # ACK sent, dialog up
    "media_active",  # pjsua mode: the WAV player/recorder are connected
    "bye_received",  # the far end sent BYE
    "disconnected",  # dialog over; status = last SIP status
    "error",  # a command failed; reason says why
]


class CallerSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Process-wide caller configuration (one pjsua account)."""

    host: str = "127.0.0.1"  # SIP bind address (127.0.0.2 etc. to appear as another host)
    port: int = 0  # 0: any free port
    transport: Literal["udp", "tcp", "tls"] = "udp"  # tls: dial sips: or ;transport=tls URIs
    # With transport "tls": the CA that signed the gateway's certificate (verified when set),
    # and a client certificate for a gateway with sip.tls.verify_client.
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    user: str = "caller"
    display_name: str = "Simulated Caller"
    media: MediaMode = "pjsua"
    codecs: list[str] = msgspec.field(default_factory=lambda: ["PCMU"])  # offer, in order
    session_timers: Literal["inactive", "optional", "required", "always"] = "optional"
    session_expires: int = 1800
    min_se: int = 90
    log_level: int = 1
    # INVITE without SDP (RFC 3261 delayed offer): the callee offers in its 200 OK and
    # the caller answers in the ACK, as some PBXs and carriers do.
    delayed_offer: bool = False
    # External mode: Dials may offer SRTP (Dial.srtp_key); pjsua must then accept an
    # RTP/SAVP answer (its own SRTP wraps only its loop transport).
    srtp: bool = False


class Dial(msgspec.Struct, tag=True, frozen=True):
    uri: str
    headers: dict[str, str] = {}
    play_wav: str = ""  # pjsua mode: WAV streamed into the call
    play_loop: bool = True
    record_wav: str = ""  # pjsua mode: WAV of what the caller receives
    local_rtp_host: str = ""  # external mode: where the parent's RTP socket listens
    local_rtp_port: int = 0
    # External mode: offer SRTP (RTP/SAVP, SDES) keyed with this master key + salt (30 bytes).
    srtp_key: bytes = b""


class Hold(msgspec.Struct, tag=True, frozen=True):
    pass


class Unhold(msgspec.Struct, tag=True, frozen=True):
    pass


class OfferlessReinvite(msgspec.Struct, tag=True, frozen=True):
    """A re-INVITE without SDP: the far end must offer in its 2xx, the ACK answers."""


class GoSilent(msgspec.Struct, tag=True, frozen=True):
    """Stop all SIP processing for ``seconds``: no session refresh, no responses (hung PBX)."""

    seconds: float


class Hangup(msgspec.Struct, tag=True, frozen=True):
    pass


class Shutdown(msgspec.Struct, tag=True, frozen=True):
    pass


Command = Dial | Hold | Unhold | OfferlessReinvite | GoSilent | Hangup | Shutdown


class Request(msgspec.Struct, tag=True, frozen=True):
    seq: int
    command: Command


class Reply(msgspec.Struct, tag=True, frozen=True):
    seq: int
    ok: bool
    error: str = ""


class Ready(msgspec.Struct, tag=True, frozen=True):
    host: str
    port: int


class CallerEvent(msgspec.Struct, tag=True, frozen=True):
    kind: EventKind
    at: float  # time.monotonic() in the caller process (same clock as the parent's)
    status: int = 0
    reason: str = ""
    sdp: str = ""  # the far end's SDP (answered / reanswered)
    remote_host: str = ""  # audio address the far end answered with
    remote_port: int = 0
    codec: str = ""
    payload_type: int = -1
    direction: str = ""


Message = Reply | Ready | CallerEvent


FRAME = struct.Struct(">I")  # length prefix of each msgpack frame on the pipes
