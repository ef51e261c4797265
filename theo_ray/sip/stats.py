"""GatewayStats: what the SIP gateway counted since it started."""

from __future__ import annotations

import msgspec


class GatewayStats(msgspec.Struct):
    rx_messages: int = 0  # SIP messages pjsip received (any kind, parsed or not)
    invites: int = 0  # initial INVITEs seen by the application (any source)
    answered: int = 0  # 200 OK sent
    rejected_403: int = 0  # source not in allowed_peers
    malformed_sdp: int = 0  # offer we could not parse (initial or re-INVITE)
    no_common_codec: int = 0  # well-formed offer without a codec we decode (488)
    srtp_refused: int = 0  # media security against sip.srtp / srtp_over_udp (488)
    srtp_calls: int = 0  # calls answered with SRTP (SDES)
    rejected_by_stack: int = 0  # INVITEs pjsip refused before the application saw them
    busy_while_free: int = 0  # pjsua's own 486 while Theo held fewer than max_calls calls
    too_large: int = 0  # INVITE cut by the transport or shorter than its Content-Length (513)
    rejected_full: int = 0  # every admitted call slot taken (503 + Retry-After)
    refused_source_rate: int = 0  # a source over sip.admission.invites_per_s_per_source (503)
    refused_global_rate: int = 0  # the shard over sip.admission.invites_per_s (503)
    refused_source_calls: int = 0  # a source holding sip.admission.max_calls_per_source calls (503)
    rejected_overload: int = 0  # the supervisor's call.overload guard refused the call (503)
    malformed_invite: int = 0  # a body without Content-Type, no Call-ID (400)
    unsupported_body: int = 0  # a body that is not application/sdp (415)
    delayed_offers: int = 0  # INVITEs without SDP: Theo offered in the 200 OK
    bad_answers: int = 0  # delayed offer whose ACK brought no usable answer (BYE)
    ack_timeouts: int = 0  # 200 OK never ACKed within sip.ack_timeout_s (released)
    refused_methods: int = 0  # out-of-dialog requests Theo does not serve (SUBSCRIBE: 405)
    duplicate_session: int = 0  # X-Theo-Session already in a live call (486)
    setup_failed: int = 0  # router failed or was too slow (503)
    cancels: int = 0
    byes_received: int = 0
    agent_hangups: int = 0
    timers_expired: int = 0  # RFC 4028 expiry: peer stopped refreshing
    refreshes_answered: int = 0  # in-dialog UPDATE/re-INVITE answered 2xx (session refreshes)
    reinvites: int = 0  # re-offers answered (hold, unhold, new address, refresh with SDP)
    media_updates: int = 0  # re-offers that changed RemoteMedia (update_call sent)
    router_errors: int = 0  # update_call/close_call raised
    active_calls: int = 0
    # INVITE received -> 200 OK sent, milliseconds, most recent calls last (bounded).
    answer_ms: list[float] = msgspec.field(default_factory=list)


REFUSAL_COUNTERS = (
    "rejected_403", "rejected_full", "refused_source_rate", "refused_global_rate", "refused_source_calls",
    "rejected_overload", "too_large", "malformed_invite", "malformed_sdp", "unsupported_body", "no_common_codec", "duplicate_session",
    "rejected_by_stack", "refused_methods", "setup_failed", "ack_timeouts",
)


def refusals(stats: GatewayStats) -> dict[str, int]:
    """The refusal counters that are not zero, by name (for `theo status`)."""
    return {name: getattr(stats, name) for name in REFUSAL_COUNTERS if getattr(stats, name)}


def add_stats(total: GatewayStats, more: GatewayStats) -> GatewayStats:
    """Counters of two shard processes added up (a recycled or crashed one, and its successor)."""
    fields = {
        name: getattr(total, name) + getattr(more, name)
        for name in total.__struct_fields__
        if name not in ("active_calls", "answer_ms")
    }
    return GatewayStats(**fields, active_calls=more.active_calls, answer_ms=(total.answer_ms + more.answer_ms)[-200:])
