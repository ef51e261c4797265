"""SipSettings: how the gateway listens, whom it answers and what it negotiates."""

from __future__ import annotations

from typing import Literal

import msgspec


class SipSettings(msgspec.Struct, forbid_unknown_fields=True):
    host: str = "127.0.0.1"  # address the SIP transports bind (and advertise in Contact)
    port: int = 5060
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
    warm_pool_size: int = 4  # CallActors the supervisor keeps ready (used by the lead)
    ring_before_answer: bool = True  # 180 Ringing while the router opens the call
    answer_timeout_s: float = 5.0  # router slower than this -> 503 to the PBX
    max_calls: int = 32  # pjsua silently caps this at its build-time PJSUA_MAX_CALLS
    poll_interval_ms: int = 5  # longest a command from asyncio waits for the SIP thread
    log_level: int = 1  # pjsip log verbosity (0 silent .. 5 all messages)
