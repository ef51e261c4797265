"""Typed messages between the SIP gateway and the call router (the CallSupervisor).

The gateway tells the router a call arrived (CallSetup), the router answers where the
call's RTP socket listens (MediaAnswer); later the gateway reports media changes
(re-INVITE: hold, unhold, new remote address) as a new RemoteMedia and the end of the
call as CallEnded.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from theo_ray.media.direction import Direction
from theo_ray.media.srtp import SrtpKeys
from theo_ray.messages import TraceContext

EndReason = Literal[
    "caller_bye",  # the PBX/caller sent BYE
    "agent_hangup",  # Theo hung up (SipGateway.hangup)
    "cancel",  # the caller gave up before the 200 OK (CANCEL)
    "session_timer_expired",  # RFC 4028: the peer's refreshes stopped
    "setup_failed",  # the router could not open the call, or the answer failed
    "gateway_shutdown",  # the gateway stopped with the call still up
    "ack_timeout",  # the 200 OK was never ACKed (sip.ack_timeout_s)
    "bad_answer",  # delayed offer: the ACK brought no usable SDP answer
    "gateway_crash",  # the gateway process holding the dialog died
    "orphaned",  # the supervisor found no dialog for the call (reaped)
    "sip_error",  # any other end (transport error, refresh refused)
]


class RemoteMedia(msgspec.Struct, frozen=True):
    """Where and how the PBX wants RTP, from its latest offer.

    ``clock_rate`` is the RTP clock of the SDP (8000 for G.722 although its audio is 16 kHz).
    ``direction`` is the answer Theo gave: "recvonly"/"inactive" mean the PBX holds the call,
    so the CallActor must not send RTP until a later RemoteMedia says "sendrecv".
    """

    host: str
    port: int
    codec: str
    payload_type: int
    clock_rate: int
    telephone_event_pt: int | None = None
    direction: Direction = "sendrecv"
    ptime_ms: int = 20
    srtp: SrtpKeys | None = None  # SRTP keys negotiated in the SDP (SDES); None: plain RTP


class CallSetup(msgspec.Struct, frozen=True):
    """An INVITE the gateway accepted and is about to answer."""

    session_id: str  # X-Theo-Session (the PBX's UNIQUEID); the SIP Call-ID when absent
    sip_call_id: str
    caller_id: str  # From user part, e.g. "5511999990000"
    caller_name: str  # From display name ("" when absent)
    remote: RemoteMedia
    gateway_node: str = ""  # the gateway's SIP address, host:port
    invite_at: float = 0.0  # gateway clock (time.monotonic) when the INVITE arrived
    gateway_name: str = ""  # the named SipGateway shard holding the dialog (hang-up goes there)
    gateway_node_id: str = ""  # the Ray node of that shard: the CallActor runs there (media stays on it)
    # The gateway's span of this dialog (INVITE -> 200 OK -> BYE): the call's trace starts there.
    trace: TraceContext = TraceContext()


class MediaAnswer(msgspec.Struct, frozen=True):
    """Where the call's RTP socket listens (RTCP on port + 1); goes into the SDP answer."""

    host: str
    port: int
    # Set (to why, e.g. "cpu") when the supervisor refused the call instead (no CallActor,
    # nothing listens): the gateway answers 503 + this Retry-After, counted as rejected_overload.
    refusal: str = ""
    retry_after_s: int = 0


class CallEnded(msgspec.Struct, frozen=True):
    session_id: str
    reason: EndReason
    sip_call_id: str = ""
    sip_status: int = 0  # last SIP status of the dialog (e.g. 408 for a timer expiry)


class ListenAddress(msgspec.Struct, frozen=True):
    """One SIP transport the gateway listens on (what a PBX's pjsip.conf points at)."""

    transport: str  # "udp" | "tcp" | "tls"
    host: str
    port: int
