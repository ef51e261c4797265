"""The pjsua2 objects of the gateway: Endpoint, Account and Call subclasses that hand every
pjsua callback to the SipUserAgent (on the pjsua thread), and what a Call remembers.

They hold no logic: the user agent (``user_agent``) and its in-dialog half
(``dialog_events``) decide. ``remote_media`` turns an offer (or an answer) into the
CallActor's RemoteMedia.
"""

from __future__ import annotations

import itertools
import random
from typing import TYPE_CHECKING

import pjsua2 as pj

from theo_ray.media.srtp import SrtpKeys
from theo_ray.sip.messages import CallSetup, EndReason, MediaAnswer, RemoteMedia
from theo_ray.sip.sdp import RtpFormat, SdpOffer, SdpOrigin, answer_direction

if TYPE_CHECKING:
    from theo_ray.sip.user_agent import SipUserAgent

_NONCES = itertools.count(1)


def remote_media(offer: SdpOffer, codec: RtpFormat, ptime_ms: int, srtp: SrtpKeys | None = None) -> RemoteMedia:
    event = offer.telephone_event_for(codec)
    return RemoteMedia(
        host=offer.connection_host,
        port=offer.audio_port,
        codec=codec.encoding.upper(),
        payload_type=codec.payload_type,
        clock_rate=codec.clock_rate,
        telephone_event_pt=event.payload_type if event else None,
        direction=answer_direction(offer),
        # a=ptime is a hint; a nonsense one (0, negative, minutes) keeps Theo's own.
        ptime_ms=offer.ptime if offer.ptime and 10 <= offer.ptime <= 120 else ptime_ms,
        srtp=srtp,
    )


class GatewayEndpoint(pj.Endpoint):
    def __init__(self, agent: SipUserAgent) -> None:
        super().__init__()
        self._agent = agent

    def onRejectedIncomingCall(self, prm: pj.OnRejectedIncomingCallParam) -> None:
        self._agent._on_rejected_by_stack(prm)


class GatewayAccount(pj.Account):
    def __init__(self, agent: SipUserAgent) -> None:
        super().__init__()
        self._agent = agent

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self._agent._on_incoming(self, prm)

    def onIncomingSubscribe(self, prm: pj.OnIncomingSubscribeParam) -> None:
        # pjsua would accept presence subscriptions (200 + NOTIFYs): Theo serves none.
        prm.code = 405
        prm.reason = "Method Not Allowed"
        self._agent._stats.refused_methods += 1


class GatewayCall(pj.Call):
    """One dialog and what Theo knows about it. Lives on the pjsua thread only."""

    def __init__(self, agent: SipUserAgent, account: pj.Account, call_id: int) -> None:
        super().__init__(account, call_id)
        self.agent = agent
        self.pj_id = call_id
        self.setup: CallSetup | None = None
        self.codec: RtpFormat | None = None
        self.media: MediaAnswer | None = None
        self.origin = SdpOrigin(session_id=random.randrange(1, 2**31))
        self.pending_offer: SdpOffer | None = None
        self.srtp: SrtpKeys | None = None  # the call's SRTP keys (SDES), None: plain RTP
        self.over_tls = False  # the INVITE came over SIP over TLS (SDES keys may be taken)
        self.delayed_offer = False  # INVITE without SDP: Theo offers, the ACK answers
        self.reoffered = False  # Theo offered in a re-INVITE's 2xx: the ACK answers
        self.invite_text = ""  # the initial INVITE as received (DialogRelease builds on it)
        self.source_host = ""  # the INVITE's source address (admission counts calls per source)
        self.source_address = ""  # ... with its port ("host:port"): where a BYE of Theo's goes
        self.nonce = next(_NONCES)  # tells this call from a later one in the same pjsua slot
        self.confirmed = False
        self.setup_failed = False
        self.end_reason: EndReason | None = None  # set by Theo before it hangs up
        self.session_expires = 0  # RFC 4028 interval in force (0: no session timer)
        self.last_refresh_at = 0.0
        self.ended = False

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        self.agent._on_call_state(self, prm)

    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:
        self.agent._on_tsx_state(self, prm)

    def onCallRxOffer(self, prm: pj.OnCallRxOfferParam) -> None:
        self.agent._on_rx_offer(self, prm)

    def onCallSdpCreated(self, prm: pj.OnCallSdpCreatedParam) -> None:
        self.agent._on_sdp_created(self, prm)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        self.agent._on_media_state(self)

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:
        # pjsua's default (202) would make the gateway dial the Refer-To target itself:
        # transfers go through the PBX (AMI Redirect), never from a REFER.
        prm.statusCode = 603
        self.agent._stats.refused_methods += 1

    def onCallReplaceRequest(self, prm: pj.OnCallReplaceRequestParam) -> None:
        # An INVITE with Replaces would take over this dialog outside Theo's control.
        prm.statusCode = 603
        self.agent._stats.refused_methods += 1
