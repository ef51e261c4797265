"""DialogEvents: the in-dialog half of the SipUserAgent — the ACK's answer to a delayed
offer, re-offers (hold, unhold, a new address, a re-INVITE without SDP), the SDP Theo puts in
each answer, transaction and call state, and how a call ends and is retired.

A mixin of SipUserAgent (same state, same pjsua thread): split out so each file holds one
part of the dialog's life; the INVITE screening and answering stay in ``user_agent``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
import pjsua2 as pj

from theo_ray.sip.dialog_release import DialogRecord
from theo_ray.sip.invite_screen import message_body
from theo_ray.sip.messages import CallEnded, CallSetup, EndReason, RemoteMedia
from theo_ray.sip.pj_objects import GatewayCall, remote_media
from theo_ray.media.srtp import SrtpKeys
from theo_ray.sip.sdes import SrtpRefused, answer_crypto, negotiate_srtp
from theo_ray.sip.sdp import (
    NoCommonCodec,
    RtpFormat,
    SdpError,
    SdpOffer,
    build_answer,
    choose_codec,
    parse_offer,
)
from theo_ray.sip.sdp_offer import build_offer

if TYPE_CHECKING:
    from theo_ray.sip.pj_thread import PjsuaThread
    from theo_ray.sip.router import CallRouter
    from theo_ray.sip.settings import SipSettings
    from theo_ray.sip.stats import GatewayStats

log = logging.getLogger("theo_ray.sip.user_agent")


class DialogEvents:
    """In-dialog event handlers; the attributes below are SipUserAgent's."""

    settings: SipSettings
    _router: CallRouter
    _pj: PjsuaThread
    _stats: GatewayStats
    _preference: list[str]
    _calls: dict[int, GatewayCall]
    _graveyard: dict[int, list[GatewayCall]]
    _sessions: dict[str, GatewayCall]
    _opening: dict[str, asyncio.Task]
    _local_tags: dict[str, str]  # SIP Call-ID -> Theo's To tag (from pjsip's TX log)

    # SipUserAgent's methods this half calls (declared for readers and type checkers).
    _spawn: Callable[..., None]
    _reject: Callable[..., None]
    _answer: Callable[[GatewayCall, int], None]

    def _take_ack_answer(self, call: GatewayCall, prm: pj.OnCallStateParam) -> None:
        """The caller's answer to Theo's offer, from the ACK (delayed offer)."""
        call.delayed_offer = False
        body = ""
        if prm.e.type == pj.PJSIP_EVENT_RX_MSG:
            body, _ = message_body(prm.e.body.rxMsg.rdata.wholeMsg)
        assert call.setup is not None
        try:
            answer = parse_offer(body)
            codec = choose_codec(answer, self._preference)
        except SdpError as exc:
            self._stats.bad_answers += 1
            log.warning("call %s: the ACK brought no usable answer (%s): BYE", call.setup.session_id, str(exc))
            session_id = call.setup.session_id
            self._pj.submit(lambda: self._hangup(session_id, "bad_answer"))
            return
        call.codec = codec
        remote = remote_media(answer, codec, self.settings.ptime_ms)
        call.setup = _replace_remote(call.setup, remote)
        self._stats.media_updates += 1
        self._spawn(self._update(call.setup.session_id, remote))

    def _on_rx_offer(self, call: GatewayCall, prm: pj.OnCallRxOfferParam) -> None:
        """A re-INVITE/UPDATE offer: refuse what we cannot answer before pjsua does."""
        try:
            offer = parse_offer(prm.offer.wholeSdp)
            call.codec = self._keep_or_choose(call, offer)
            self._srtp_for(call, offer)
        except SrtpRefused as exc:
            self._stats.srtp_refused += 1
            log.warning("re-offer on %s refused: %s", call.setup and call.setup.session_id, str(exc))
            prm.statusCode = 488
            return
        except NoCommonCodec as exc:
            self._stats.no_common_codec += 1
            log.warning("re-offer on %s refused: %s", call.setup and call.setup.session_id, str(exc))
            prm.statusCode = 488
            return
        except SdpError as exc:
            self._stats.malformed_sdp += 1
            log.warning("re-offer on %s refused: %s", call.setup and call.setup.session_id, str(exc))
            prm.statusCode = 488
            return
        call.pending_offer = offer

    def _srtp_for(self, call: GatewayCall, offer: SdpOffer) -> SrtpKeys | None:
        """The keys for a re-offer: Theo keeps its own key, the peer's may change."""
        local = call.srtp.local_key if call.srtp is not None else None
        return negotiate_srtp(offer, self.settings.srtp, call.over_tls, self.settings.srtp_over_udp, local)

    def _keep_or_choose(self, call: GatewayCall, offer: SdpOffer) -> RtpFormat:
        """Keep the running codec when the re-offer still has it (no media restart)."""
        if call.codec is not None:
            for fmt in offer.formats:
                if (fmt.encoding.upper(), fmt.clock_rate) == (
                    call.codec.encoding.upper(),
                    call.codec.clock_rate,
                ):
                    return fmt
        return choose_codec(offer, self._preference)

    def _on_sdp_created(self, call: GatewayCall, prm: pj.OnCallSdpCreatedParam) -> None:
        """Replace pjsua's loop-transport SDP with ours: Theo's offer in the 200 OK of a
        delayed-offer INVITE, the answer to every re-offer after the first answer."""
        if call.media is None or call.setup is None:
            return
        if not prm.remSdp.wholeSdp:
            if call.delayed_offer and not call.confirmed:
                prm.sdp.wholeSdp = build_offer(
                    self._preference, call.media.host, call.media.port, call.origin,
                    ptime=self.settings.ptime_ms,
                )
            elif call.confirmed:
                # A re-INVITE without SDP: offer the running media (its codec first); the
                # answer in the ACK reaches _on_media_state through pjsua's negotiation.
                running = call.codec.encoding.upper() if call.codec else ""
                preference = sorted(self._preference, key=lambda name: name.upper() != running)
                prm.sdp.wholeSdp = build_offer(
                    preference, call.media.host, call.media.port, call.origin, ptime=self.settings.ptime_ms,
                    crypto=answer_crypto(call.srtp) if call.srtp is not None else "",
                )
                call.reoffered = True
                self._stats.reinvites += 1
            return
        offer = call.pending_offer
        if offer is None:
            try:
                offer = parse_offer(prm.remSdp.wholeSdp)
                call.codec = self._keep_or_choose(call, offer)
            except SdpError:
                return  # already refused in onCallRxOffer
        call.pending_offer = None
        assert call.codec is not None
        try:
            call.srtp = self._srtp_for(call, offer)
        except SrtpRefused:
            return  # already refused in onCallRxOffer
        prm.sdp.wholeSdp = build_answer(
            offer, call.codec, call.media.host, call.media.port, call.origin,
            ptime=self.settings.ptime_ms, crypto=answer_crypto(call.srtp) if call.srtp is not None else "",
        )
        self._stats.reinvites += 1
        remote = remote_media(offer, call.codec, self.settings.ptime_ms, call.srtp)
        if remote != call.setup.remote:
            call.setup = _replace_remote(call.setup, remote)
            self._stats.media_updates += 1
            self._spawn(self._update(call.setup.session_id, remote))

    def _on_media_state(self, call: GatewayCall) -> None:
        """After Theo offered in a re-INVITE's 2xx: the negotiated stream is the answer."""
        if not call.reoffered or call.setup is None:
            return
        call.reoffered = False
        try:
            info = call.getStreamInfo(0)
        except pj.Error as exc:
            log.warning("call %s: no stream after the re-offer: %s", call.setup.session_id, exc.info())
            return
        host, _, port = info.remoteRtpAddress.rpartition(":")
        directions = {
            pj.PJMEDIA_DIR_ENCODING_DECODING: "sendrecv", pj.PJMEDIA_DIR_ENCODING: "sendonly",
            pj.PJMEDIA_DIR_DECODING: "recvonly",
        }
        remote = RemoteMedia(
            host=host.strip("[]"), port=int(port or 0), codec=info.codecName.upper(),
            payload_type=info.txPt, clock_rate=8000,
            telephone_event_pt=info.audTxEventPt if info.audTxEventPt > 0 else None,
            direction=directions.get(info.dir, "inactive"), ptime_ms=self.settings.ptime_ms,
            # Theo's own re-offer carried its key again; the peer's is taken as unchanged
            # (pjsua's stream info has no SDES key; a changed one would show as srtp_auth drops).
            srtp=call.srtp,
        )
        if remote.port and remote != call.setup.remote:
            call.setup = _replace_remote(call.setup, remote)
            self._stats.media_updates += 1
            self._spawn(self._update(call.setup.session_id, remote))

    async def _update(self, session_id: str, remote: RemoteMedia) -> None:
        try:
            await self._router.update_call(session_id, remote)
        except Exception as exc:  # noqa: BLE001 - the call goes on with old media
            self._stats.router_errors += 1
            log.warning("update_call(%s) failed: %s", session_id, repr(exc))

    def _on_tsx_state(self, call: GatewayCall, prm: pj.OnCallTsxStateParam) -> None:
        event = prm.e
        if event.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        tsx = event.body.tsxState.tsx
        if (
            tsx.method in ("UPDATE", "INVITE")
            and tsx.role == pj.PJSIP_ROLE_UAS
            and call.confirmed
            and event.body.tsxState.type == pj.PJSIP_EVENT_TX_MSG
            and 200 <= tsx.statusCode < 300
        ):
            self._stats.refreshes_answered += 1  # RFC 4028 refresh (or any re-INVITE) accepted
            call.last_refresh_at = self._clock()
            return
        if tsx.method != "BYE" or call.ended:
            return
        if tsx.role == pj.PJSIP_ROLE_UAS:
            self._finish(call, call.end_reason or "caller_bye", 200)
        elif call.end_reason is None:
            # pjsip itself sent BYE. pjsua reports the 408 "No session refresh received"
            # only when that BYE completes (up to 32 s against a dead peer), so the expiry
            # is recognised now from pjsip's own rule: the refreshee ends the session
            # SE - max(32, SE/3) seconds after the last refresh.
            expires = call.session_expires
            quiet = self._clock() - call.last_refresh_at
            if expires and quiet >= expires - max(32, expires // 3) - 1:
                self._finish(call, "session_timer_expired", 408)
            else:
                self._finish(call, "sip_error", call.getInfo().lastStatusCode)

    def _on_call_state(self, call: GatewayCall, prm: pj.OnCallStateParam) -> None:
        info = call.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and not call.confirmed:
            call.confirmed = True
            call.last_refresh_at = self._clock()
            self._dialog_up(call)
            if call.delayed_offer:
                self._take_ack_answer(call, prm)
        if info.state != pj.PJSIP_INV_STATE_DISCONNECTED:
            return
        code = info.lastStatusCode
        if call.end_reason is not None:
            reason: EndReason = call.end_reason
        elif call.setup_failed:
            reason = "setup_failed"
        elif not call.confirmed:
            reason = "cancel" if code == 487 else "setup_failed"
        elif code == 408:
            reason = "session_timer_expired"
        else:
            reason = "caller_bye"
        self._finish(call, reason, code)
        self._retire(call)

    def _dialog_up(self, call: GatewayCall) -> None:
        """Tell a router that outlives this process (the shard link) what ending the dialog
        takes; in-process routers have no `dialog_confirmed`: they die with the dialog."""
        confirmed = getattr(self._router, "dialog_confirmed", None)
        tag = self._local_tags.get(call.setup.sip_call_id) if call.setup is not None else None
        host, _, port = call.source_address.rpartition(":")
        if confirmed is None or not tag or not call.invite_text or not port.isdigit():
            return
        dialog = DialogRecord(call.setup.session_id, call.invite_text, tag, host.strip("[]"), int(port))
        self._spawn(self._send_dialog(confirmed, dialog))

    async def _send_dialog(self, confirmed, dialog: DialogRecord) -> None:
        try:
            await confirmed(dialog)
        except Exception as exc:  # noqa: BLE001 - only the crash BYE is lost
            log.warning("call %s: dialog not handed to the gateway: %s", dialog.session_id, exc)

    def _retire(self, call: GatewayCall) -> None:
        """Drop Theo's references to a DISCONNECTED call now, inside its own callback
        (pjsua2 allows it there): the pjsua2 Call then dies while its slot is still its
        own. Dropped later, after pjsua reused the slot for a new INVITE, its destructor
        would clear the new call's link to Theo and hang it up."""
        if self._calls.get(call.pj_id) is call:
            del self._calls[call.pj_id]
            self._graveyard.pop(call.pj_id, None)

    def _by_id(self, pj_id: int, nonce: int) -> GatewayCall | None:
        call = self._calls.get(pj_id)
        return call if call is not None and call.nonce == nonce and not call.ended else None

    def _reject_id(self, pj_id: int, nonce: int, code: int, headers: dict[str, str] | None = None) -> None:
        call = self._by_id(pj_id, nonce)
        if call is not None:
            self._reject(call, code, headers)

    def _ring_id(self, pj_id: int, nonce: int) -> None:
        call = self._by_id(pj_id, nonce)
        if call is not None and not call.confirmed:
            self._answer(call, 180)

    def _finish(self, call: GatewayCall, reason: EndReason, code: int) -> None:
        if call.ended:
            return
        call.ended = True
        if call.setup is None:
            return  # refused before any CallSetup: nothing to close
        counters = {
            "caller_bye": "byes_received",
            "agent_hangup": "agent_hangups",
            "cancel": "cancels",
            "session_timer_expired": "timers_expired",
        }
        if reason in counters:
            setattr(self._stats, counters[reason], getattr(self._stats, counters[reason]) + 1)
        setup = call.setup
        if self._sessions.get(setup.session_id) is call:
            del self._sessions[setup.session_id]
        log.info("call %s ended: %s (%s)", setup.session_id, reason, code)
        self._spawn(self._close(CallEnded(setup.session_id, reason, setup.sip_call_id, code)))

    async def _close(self, ended: CallEnded) -> None:
        opening = self._opening.pop(ended.session_id, None)
        if opening is not None:
            # close_call must never overtake open_call at the router.
            await asyncio.wait([opening])
        try:
            await self._router.close_call(ended)
        except Exception as exc:  # noqa: BLE001 - counted; the dialog is gone anyway
            self._stats.router_errors += 1
            log.warning("close_call(%s) failed: %s", ended.session_id, repr(exc))

    def _hangup(self, session_id: str, reason: EndReason) -> bool:
        call = self._sessions.get(session_id)
        if call is None or call.ended:
            return False
        call.end_reason = reason
        try:
            call.hangup(pj.CallOpParam())
        except pj.Error as exc:
            log.warning("hangup %s failed: %s", session_id, exc.info())
        # pjsua reports DISCONNECTED from inside hangup(); make sure the end is recorded.
        self._finish(call, reason, 0)
        return True


def _replace_remote(setup: CallSetup, remote: RemoteMedia) -> CallSetup:
    return msgspec.structs.replace(setup, remote=remote)
