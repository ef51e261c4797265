"""Typed values the AMI client and the AmiBridge actor hand to their callers: PBX health,
counters, the outcome of a Redirect/Hangup, and a channel as Status reports it."""

from __future__ import annotations

from typing import Literal

import msgspec


class AmiHealth(msgspec.Struct, frozen=True):
    """PBX health as seen through AMI Ping (GAP 11): healthy only while logged in and the last
    Pong is younger than `unhealthy_after_s`."""

    healthy: bool
    connected: bool
    logged_in: bool
    reason: str  # "ok", or why not: "no Pong for 2.4 s", "authentication failed", ...
    last_pong_age_s: float | None  # None before the first Pong of this session
    last_ping_rtt_ms: float | None
    ami_version: str  # from the banner, e.g. "9.0.0"
    reconnects: int


class AmiStats(msgspec.Struct):
    """Counters of the AMI client; malformed input is dropped and counted, never raised."""

    frames_received: int = 0
    malformed_frames: int = 0  # a block that is neither a Response nor an Event
    oversized_frames: int = 0  # a block that grew past the size limit without ending
    unmatched_responses: int = 0  # a Response whose ActionID nobody waits for
    events_handled: int = 0
    events_ignored: int = 0
    connects: int = 0
    reconnects: int = 0
    login_failures: int = 0
    connection_losses: int = 0
    pings_sent: int = 0
    pongs: int = 0
    ping_failures: int = 0
    actions_sent: int = 0
    action_errors: int = 0
    action_timeouts: int = 0
    redirects: int = 0
    hangups: int = 0
    status_confirmations: int = 0
    status_full_scans: int = 0


class ChannelInfo(msgspec.Struct, frozen=True):
    """One channel from an AMI `Status` event."""

    channel: str
    uniqueid: str
    state: str
    context: str
    exten: str
    priority: str
    variables: dict[str, str] = {}


ActionKind = Literal["redirect", "hangup"]


class AmiActionResult(msgspec.Struct, frozen=True):
    """A Redirect or Hangup that the PBX accepted (failures raise theo_ray.asterisk.errors)."""

    action: ActionKind
    session_id: str
    channel: str  # the caller's channel name as confirmed by Status right before acting
    already_done: bool  # True: an earlier call did it; nothing was sent this time
    duration_ms: float  # confirm + action, as measured by this call (0 when already_done)
    target: str = ""  # "context,exten,priority" for a redirect
    message: str = ""  # the PBX's Message header
