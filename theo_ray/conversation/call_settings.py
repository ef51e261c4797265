"""Per-node call settings: where CallActors bind RTP, the warm pool, the agent mode."""

from __future__ import annotations

import msgspec

from theo_ray.conversation.overload_guard import OverloadSettings


class CallSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Address CallActors bind their RTP sockets on and put in the SDP answer (the address
    # the PBX reaches this node on).
    rtp_host: str = "127.0.0.1"
    # CallActors created ahead (sockets bound, VAD/turn model loaded) so an INVITE does not
    # pay for actor creation (~0.7 s each on 2 cores).
    warm_pool_size: int = 2
    # A refill starts a Ray worker (~1 s of CPU): on few cores, right as a call opens, that
    # competes with its first second (greeting, jitter buffers priming). Wait this long
    # first, unless the pool is empty (the next INVITE would then pay for creation).
    warm_refill_delay_s: float = 2.0
    # Finished calls whose records the supervisor keeps for `theo` and the tests.
    keep_records: int = 200
    # Hang up through AMI (behind Asterisk) instead of SIP BYE.
    use_ami: bool = False
    # Orphan reaper: every reap_interval_s the supervisor asks each gateway shard which
    # dialogs it holds and ends the CallActors whose dialog is gone (a shard process died,
    # a close_call was lost). Calls younger than orphan_grace_s are left alone: their
    # dialog may still be completing (a 200 OK waits up to sip.ack_timeout_s for its ACK).
    reap_interval_s: float = 5.0
    orphan_grace_s: float = 12.0
    # A dialog a shard holds that no call of the supervisor does (its CallActor and the
    # takeover failed, or both died with the supervisor) is hung up after this long; above
    # sip.answer_timeout_s, during which a new call's dialog is not in the call map yet.
    orphan_dialog_grace_s: float = 15.0
    # A CallActor that dies mid-call is replaced: a warm actor binds the dead one's RTP port,
    # restores its last memory checkpoint and apologises. A takeover not done in this long
    # gives up: the caller goes to a human (AMI Redirect behind Asterisk) or is hung up.
    failover_timeout_s: float = 1.0
    # New calls refused (503 + Retry-After) while the node's CPU or an empty warm pool says
    # one more would degrade the calls in progress (theo_ray/conversation/overload_guard.py).
    overload: OverloadSettings = msgspec.field(default_factory=OverloadSettings)
