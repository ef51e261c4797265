"""SipSettings: how the gateway listens, whom it answers and what it negotiates."""

from __future__ import annotations

from typing import Literal

import msgspec

from theo_ray.errors import ConfigError
from theo_ray.sip.admission import AdmissionSettings
from theo_ray.sip.tls import SipTlsSettings

# pjsua.h's default, which the pjsua2-python 2.15.1 wheel keeps (measured, see max_calls).
PJSUA_MAX_CALLS = 4


class SipSettings(msgspec.Struct, forbid_unknown_fields=True):
    host: str = "127.0.0.1"  # address the SIP transports bind (and advertise in Contact)
    port: int = 5080  # the PBX keeps 5060; Theo's gateway shards listen on 5080, 5081, ...
    # [] with sip.tls.enabled: a TLS-only gateway (nothing listens in clear).
    transports: list[Literal["udp", "tcp"]] = msgspec.field(default_factory=lambda: ["udp", "tcp"])
    # PBX addresses (IPs or CIDR networks) allowed to send INVITEs; others get 403.
    allowed_peers: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.1"])
    # RFC 4028 session timers (GAP 8); pjsip refuses Min-SE below 90 s, as the RFC does.
    session_timers: Literal["inactive", "optional", "required", "always"] = "optional"
    session_expires: int = 1800
    min_se: int = 90
    user_agent: str = "Theo"
    account_user: str = "theo"
    codec_preference: list[str] = msgspec.field(
        default_factory=lambda: ["G722", "PCMU", "PCMA", "L16"]
    )
    ptime_ms: int = 20
    ring_before_answer: bool = True  # 180 Ringing while the router opens the call
    answer_timeout_s: float = 5.0  # router slower than this -> 503 to the PBX
    # Calls admitted per gateway process. pjsua's compile-time PJSUA_MAX_CALLS is 4 in the
    # pjsua2-python wheel and pjsua answers an INVITE beyond it with 486 itself; Theo keeps
    # one slot spare to answer a full shard with 503 + Retry-After, so 3 is the default.
    # 4 works too, but then the 5th INVITE gets pjsua's 486 instead of Theo's 503.
    max_calls: int = 3
    retry_after_s: int = 2  # Retry-After of the 503 a full shard sends
    # A 200 OK not ACKed within this is released with its CallActor (RFC 3261 Timer H is
    # 32 s; sooner so that INVITEs nobody ACKs cannot hold a shard's slots).
    ack_timeout_s: float = 8.0
    # Gateway processes per node, shard k on port + k (port 0: each picks a free port).
    # A node answers shards x max_calls concurrent calls; Asterisk tries the shards in turn.
    shards: int = 4
    poll_interval_ms: int = 5  # longest a command from asyncio waits for the SIP thread
    log_level: int = 1  # pjsip log verbosity (0 silent .. 5 all messages)
    # INVITE rate and concurrent calls per source and per shard, refused with 503 +
    # Retry-After (theo_ray/sip/admission.py).
    admission: AdmissionSettings = msgspec.field(default_factory=AdmissionSettings)
    # SIP over TLS beside the transports above (theo_ray/sip/tls.py; README "Security").
    tls: SipTlsSettings = msgspec.field(default_factory=SipTlsSettings)
    # SRTP keyed in the SDP (SDES, RFC 4568; theo_ray/sip/sdes.py): "optional" answers an
    # RTP/SAVP offer with SRTP and a plain one with RTP; "required" refuses plain offers
    # (488); "off" refuses SRTP offers (488). SDES keys travel in the SDP, so an SRTP offer
    # is taken only over SIP over TLS unless srtp_over_udp. Off by default: turning it on
    # puts pjsua's own SRTP code in every INVITE's path, and pjsua 2.15.1 crashes on a
    # DTLS-SRTP offer then (README "SIP over TLS and SRTP").
    srtp: Literal["off", "optional", "required"] = "off"
    srtp_over_udp: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.max_calls <= PJSUA_MAX_CALLS:
            raise ConfigError(
                "sip.max_calls",
                f"must be 1..{PJSUA_MAX_CALLS} (the pjsua2 wheel's PJSUA_MAX_CALLS); raise sip.shards for more calls",
            )
        if not 1 <= self.shards <= 64:
            raise ConfigError("sip.shards", "must be 1..64 gateway processes per node")
        if self.port and self.port + self.shards - 1 > 65535:
            raise ConfigError("sip.shards", f"ports {self.port}..{self.port + self.shards - 1} exceed 65535")
        if not self.transports and not self.tls.enabled:
            raise ConfigError("sip.transports", "empty: a TLS-only gateway needs sip.tls.enabled")
        if self.tls.enabled and self.tls.port and self.tls.port + self.shards - 1 > 65535:
            raise ConfigError("sip.tls.port", f"ports {self.tls.port}..{self.tls.port + self.shards - 1} exceed 65535")
