"""SipUserAgent: Theo's SIP signalling on pjsua2 — INVITE in, 200 OK with the CallActor's SDP.

It only signals. pjsua keeps its default single audio stream (with none it answers 488)
but the account uses an in-memory loop media transport, so pjsua opens no RTP/RTCP
socket; every SDP answer on the wire is built by ``theo_ray.sip.sdp`` from the offer and
the CallActor's socket (``MediaAnswer``). The first answer goes out with
``Call.answer(sdp=...)`` once the router has opened the call; re-offers are rewritten in
``onCallSdpCreated`` and reported to the router as ``update_call``.

This file holds the public API and the new INVITE end to end (screen, open, answer, ACK
timer), whose steps share its state; the in-dialog half is ``dialog_events.DialogEvents``,
the pjsua2 subclasses are in ``pj_objects``, pjsua's endpoint and account configuration in
``endpoint_setup``.

Threading: pjsua2 runs in one PjsuaThread; the router is awaited on the asyncio loop that
started the agent. pjsua2 objects are only touched on the pjsua thread.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec
import pjsua2 as pj

from theo_ray.sip.datagram_record import DatagramRecord, summarise_rx
from theo_ray.sip.dialog_events import DialogEvents
from theo_ray.sip.dialog_release import local_tag_from_tx, send_release
from theo_ray.sip.endpoint_setup import account_config, start_endpoint
from theo_ray.sip.tls import check_tls_files
from theo_ray.sip.admission import AdmissionControl
from theo_ray.sip.invite import PeerFilter, parse_invite, source_host
from theo_ray.sip.invite_screen import Admitted, Refusal, screen_invite
from theo_ray.sip.messages import CallSetup, MediaAnswer, RemoteMedia
from theo_ray.sip.pj_objects import (
    GatewayAccount,
    GatewayCall,
    GatewayEndpoint,
    remote_media,
)
from theo_ray.sip.pj_thread import PjLogWriter, PjsuaThread
from theo_ray.sip.router import CallRouter
from theo_ray.sip.sdes import answer_crypto, came_over_tls
from theo_ray.sip.sdp import SdpError, build_answer, parse_offer
from theo_ray.sip.settings import PJSUA_MAX_CALLS, SipSettings
from theo_ray.sip.stats import GatewayStats
from theo_ray.sip.unserved_methods import send_reply, unserved_reply

log = logging.getLogger(__name__)

_ANSWER_SAMPLES = 200  # INVITE -> 200 OK times kept in GatewayStats


class SipUserAgent(DialogEvents):
    """The gateway's SIP user agent. ``await start()`` on the loop the router runs on.

    Log calls on the pjsua thread pass ``str(exc)``, never the exception: a kept
    traceback would keep a pjsua2 Call alive past ``libDestroy`` and off its thread.
    """

    def __init__(
        self,
        settings: SipSettings,
        router: CallRouter,
        *,
        clock: Callable[[], float] = time.monotonic,
        datagram_record: DatagramRecord | None = None,
    ) -> None:
        self.settings = settings
        self._router = router
        self._clock = clock
        self._peers = PeerFilter(settings.allowed_peers)
        self._admission = AdmissionControl(settings.admission, settings.max_calls, settings.retry_after_s)
        self._quiet_until = 0.0  # refusal logging: one line a second at most during a flood
        self._unlogged = 0
        self._media_family = 6 if ":" in settings.host else 4
        self._preference = list(settings.codec_preference)  # narrowed to pjsua's codecs at start
        self._stats = GatewayStats()
        self._answer_ms: collections.deque[float] = collections.deque(maxlen=_ANSWER_SAMPLES)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pj = PjsuaThread(
            "sip-gateway",
            lambda: GatewayEndpoint(self),
            self._setup_endpoint,
            poll_interval_ms=settings.poll_interval_ms,
        )
        self._account: GatewayAccount | None = None
        self._record = datagram_record
        self._log_writer = PjLogWriter(
            logging.getLogger("theo_ray.sip.pjsip"),
            forward_level=settings.log_level,
            observer=self._on_pj_log,
        )
        # Theo's To tag of each recent 2xx, by Call-ID (from pjsip's TX log): DialogRelease.
        self._local_tags: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._calls: dict[int, GatewayCall] = {}  # pjsua call id -> call, until DISCONNECTED
        self._graveyard: dict[int, list[GatewayCall]] = {}  # see _on_incoming and _retire
        self._sessions: dict[str, GatewayCall] = {}  # session id -> live call
        # Loop side: router tasks in flight, and each session's open_call task.
        self._tasks: set[asyncio.Task] = set()
        self._opening: dict[str, asyncio.Task] = {}
        self.addresses: dict[str, tuple[str, int]] = {}  # transport -> bound (host, port)
        self._tls_passphrase = ""  # the TLS key's, read at start; only pjsip gets it

    # ------------------------------------------------------------------ public API

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.settings.tls.enabled:
            # Before pjsua starts: a ConfigError naming the bad file instead of pjsip's EINVAL.
            self._tls_passphrase = await asyncio.to_thread(check_tls_files, self.settings.tls)
        await asyncio.to_thread(self._pj.start)
        log.info("SIP gateway listening on %s", self.addresses)

    async def stop(self) -> None:
        """Hang up live calls (reason gateway_shutdown), destroy pjsua, flush close_call."""
        if self._pj.running:
            await asyncio.to_thread(self._pj.stop, self._hangup_all)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)

    async def hangup(self, session_id: str) -> bool:
        """Agent-initiated hang-up (BYE, or 603 if not answered yet); False if no such call."""
        return await self._pj.run(lambda: self._hangup(session_id, "agent_hangup"))

    def stats(self) -> GatewayStats:
        return msgspec.structs.replace(
            self._stats, active_calls=len(self._sessions), answer_ms=list(self._answer_ms)
        )

    def active_sessions(self) -> list[str]:
        return list(self._sessions)

    # ------------------------------------------------------------------ pjsua setup

    def _setup_endpoint(self, ep: pj.Endpoint) -> None:
        # The dict is filled in place: shard_main reads agent.addresses once start() returns.
        addresses, self._preference = start_endpoint(ep, self.settings, self._log_writer, self._tls_passphrase)
        self.addresses.update(addresses)
        self._account = GatewayAccount(self)
        self._account.create(account_config(self.settings, self.addresses), True)

    def _on_pj_log(self, text: str) -> None:
        summary = summarise_rx(text)
        if summary is not None:
            self._stats.rx_messages += 1
            if self._record is not None:
                self._record.write(summary)
            reply = unserved_reply(text)
            if reply is not None:
                # 405/501 pjsip would never have sent. Counted before it leaves (this is the
                # SIP thread): whoever has the answer in hand already sees it in the stats.
                self._stats.refused_methods += 1
                if not send_reply(reply[0], reply[1], self.settings.host):
                    self._stats.refused_methods -= 1
            return
        sent = local_tag_from_tx(text)
        if sent is not None:
            call_id, tag = sent
            self._local_tags[call_id] = tag
            while len(self._local_tags) > 4 * PJSUA_MAX_CALLS:
                self._local_tags.popitem(last=False)

    def _hangup_all(self) -> None:
        live = list(self._sessions)
        for session_id in live:
            self._hangup(session_id, "gateway_shutdown")
        # Let the BYEs leave before the endpoint goes (bounded).
        deadline = time.monotonic() + (0.5 if live else 0.0)
        while time.monotonic() < deadline and self._pj.endpoint is not None:
            self._pj.endpoint.libHandleEvents(10)
        # pjsua2 objects must be freed here, before libDestroy and on this thread.
        self._sessions.clear()
        self._calls.clear()
        self._account = None

    # ------------------------------------------------------------------ incoming INVITE

    def _on_rejected_by_stack(self, prm: pj.OnRejectedIncomingCallParam) -> None:
        self._stats.rejected_by_stack += 1
        self._stats.invites += 1
        info = parse_invite(prm.rdata.wholeMsg) if prm.rdata.wholeMsg else None
        if info is not None and prm.statusCode in (400, 488) and info.body.strip():
            try:
                parse_offer(info.body)
                if prm.statusCode == 488:
                    self._stats.no_common_codec += 1  # pjsua found none of its codecs
            except SdpError:
                self._stats.malformed_sdp += 1
        elif prm.statusCode == 415:
            self._stats.unsupported_body += 1
        elif prm.statusCode == 486 and len(self._sessions) < self.settings.max_calls:
            # pjsua has no slot although Theo holds fewer calls than it admits: slots are
            # taken by INVITEs being refused right now, or held by sessions pjsua never
            # ended. The shard process is recycled when idle if this persists (ShardProcess).
            self._stats.busy_while_free += 1
        log.warning(
            "INVITE %s from %s refused by pjsip: %s %s",
            info.call_id[:80] if info else "?", prm.rdata.srcAddress or "?", prm.statusCode, prm.reason,
        )

    def _on_incoming(self, account: pj.Account, prm: pj.OnIncomingCallParam) -> None:
        # pjsua2 frees the INVITE's cloned rdata right after this callback returns; a
        # hang-up from inside the callback frees it first and pjsip then aborts the process
        # (sip_transport.c: pjsip_rx_data_free_cloned: Assertion 'rdata'). So nothing here
        # answers or hangs up: every response goes through the command queue, which the
        # pjsua thread drains after the callback has returned.
        invite_at = self._clock()
        self._stats.invites += 1
        stale = self._calls.get(prm.callId)
        if stale is not None:
            # Never dropped while another call owns its slot: a pjsua2 Call's destructor
            # clears (and hangs up) whatever call now has its id. Freed with that call.
            self._graveyard.setdefault(prm.callId, []).append(stale)
        call = GatewayCall(self, account, prm.callId)
        self._calls[call.pj_id] = call
        pj_id, nonce = call.pj_id, call.nonce
        source = prm.rdata.srcAddress
        host = source_host(source)
        verdict: Refusal | Admitted | None = None
        if self._peers.allows(host):  # strangers get their 403 below and spend no one's tokens
            calls_from_host = sum(1 for c in self._sessions.values() if c.source_host == host)
            verdict = self._admission.check(host, invite_at, calls_from_host)
        if verdict is None:
            verdict = screen_invite(
                prm.rdata.wholeMsg, source, self._peers, self._preference,
                media_family=self._media_family,
                free_slots=self.settings.max_calls - len(self._sessions),
                retry_after_s=self.settings.retry_after_s,
                srtp=self.settings.srtp, srtp_over_udp=self.settings.srtp_over_udp,
            )
        if isinstance(verdict, Refusal):
            setattr(self._stats, verdict.counter, getattr(self._stats, verdict.counter) + 1)
            self._log_refusal(source, verdict, invite_at)
            self._pj.submit(lambda: self._reject_id(pj_id, nonce, verdict.code, verdict.headers))
            return
        call.source_host = host
        call.source_address = source
        info = verdict.info
        call.invite_text = prm.rdata.wholeMsg
        call.over_tls = came_over_tls(call.invite_text)
        session_id = info.session_header or info.call_id
        if session_id in self._sessions:
            self._stats.duplicate_session += 1
            log.warning("INVITE %s: session %s already has a live call", info.call_id[:80], session_id[:80])
            self._pj.submit(lambda: self._reject_id(pj_id, nonce, 486))
            return
        if verdict.delayed_offer:
            self._stats.delayed_offers += 1
            remote = self._placeholder_remote()
        else:
            assert verdict.offer is not None and verdict.codec is not None
            call.codec = verdict.codec
            call.pending_offer = verdict.offer
            call.srtp = verdict.srtp
            remote = remote_media(verdict.offer, verdict.codec, self.settings.ptime_ms, verdict.srtp)
        call.delayed_offer = verdict.delayed_offer
        call.session_expires = info.session_expires or (
            self.settings.session_expires if self.settings.session_timers == "always" else 0
        )
        host, port = self.addresses.get("udp") or next(iter(self.addresses.values()))
        call.setup = CallSetup(
            session_id=session_id,
            sip_call_id=info.call_id,
            caller_id=info.caller_id,
            caller_name=info.caller_name,
            remote=remote,
            gateway_node=f"{host}:{port}",
            invite_at=invite_at,
        )
        self._sessions[session_id] = call
        if self.settings.ring_before_answer:
            self._pj.submit(lambda: self._ring_id(pj_id, nonce))
        # Only plain data crosses to the loop: pjsua2 objects must die on this thread.
        self._spawn(self._open(call.pj_id, call.setup), opening=session_id)

    def _log_refusal(self, source: str, verdict: Refusal, now: float) -> None:
        """One line per refusal, but at most one a second in a flood (the rest are counted)."""
        if now < self._quiet_until:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more refused in the last second)" if self._unlogged else ""
        log.warning("INVITE from %s refused with %d: %s%s", source, verdict.code, verdict.detail[:200], more)
        self._quiet_until, self._unlogged = now + 1.0, 0

    def _placeholder_remote(self) -> RemoteMedia:
        """The media of a delayed-offer call until the ACK brings the caller's answer:
        on hold (nothing sent, nothing taken) with the codec Theo offers first."""
        first = self._preference[0].upper() if self._preference else "PCMU"
        pt = {"G722": 9, "PCMU": 0, "PCMA": 8}.get(first, 0)
        return RemoteMedia(host="", port=0, codec=first if pt or first == "PCMU" else "PCMU",
                           payload_type=pt, clock_rate=8000, direction="inactive",
                           ptime_ms=self.settings.ptime_ms)

    async def _open(self, pj_id: int, setup: CallSetup) -> None:
        try:
            media = await asyncio.wait_for(
                self._router.open_call(setup), self.settings.answer_timeout_s
            )
        except Exception as exc:  # noqa: BLE001 - any router failure becomes a 503
            log.warning("open_call(%s) failed: %s", setup.session_id, repr(exc))
            await self._pj.run(lambda: self._setup_failure(pj_id, setup))
            return
        if media.refusal:
            await self._pj.run(lambda: self._overload_refusal(pj_id, setup, media))
            return
        await self._pj.run(lambda: self._answer_ok(pj_id, setup, media))

    def _live_call(self, pj_id: int, setup: CallSetup) -> GatewayCall | None:
        """The call ``setup`` belongs to, unless it ended (pjsua reuses call ids)."""
        call = self._calls.get(pj_id)
        if call is None or call.ended or call.setup is None:
            return None
        if call.setup.sip_call_id != setup.sip_call_id:
            return None
        return call

    def _setup_failure(self, pj_id: int, setup: CallSetup) -> None:
        self._stats.setup_failed += 1
        call = self._live_call(pj_id, setup)
        if call is None:
            return
        call.setup_failed = True
        self._reject(call, 503)

    def _overload_refusal(self, pj_id: int, setup: CallSetup, media: MediaAnswer) -> None:
        """The supervisor's overload guard refused the call: 503 + Retry-After, never a 486."""
        self._stats.rejected_overload += 1
        call = self._live_call(pj_id, setup)
        self._log_refusal(call.source_address if call else "?", Refusal(
            503, "rejected_overload", f"node overloaded ({media.refusal[:80]})"), self._clock())
        if call is None:
            return
        call.setup_failed = True  # no CallActor holds it; close_call still follows, as for any setup
        self._reject(call, 503, {"Retry-After": str(max(1, media.retry_after_s))})

    def _answer_ok(self, pj_id: int, setup: CallSetup, media: MediaAnswer) -> None:
        call = self._live_call(pj_id, setup)
        if call is None or (not call.delayed_offer and (call.pending_offer is None or call.codec is None)):
            return  # cancelled while the router worked; close_call follows
        call.media = media
        prm = pj.CallOpParam()
        prm.statusCode = 200
        if not call.delayed_offer:
            assert call.pending_offer is not None and call.codec is not None
            prm.sdp.wholeSdp = build_answer(
                call.pending_offer, call.codec, media.host, media.port, call.origin,
                ptime=self.settings.ptime_ms, crypto=answer_crypto(call.srtp) if call.srtp else "",
            )
            if call.srtp is not None:
                self._stats.srtp_calls += 1
            call.pending_offer = None
        # A delayed offer is answered without an SDP here: pjsua creates its offer while it
        # sends the 200 OK and _on_sdp_created replaces it with Theo's (build_offer).
        try:
            call.answer(prm)
        except pj.Error as exc:
            log.warning("answering %s failed: %s", setup.session_id, exc.info())
            call.setup_failed = True
            self._stats.setup_failed += 1
            self._reject(call, 500)
            return
        self._stats.answered += 1
        self._answer_ms.append((self._clock() - setup.invite_at) * 1000.0)
        assert self._loop is not None
        # RFC 3261 Timer H: a 2xx never ACKed ends the dialog; sooner here so that a
        # flood of unACKed INVITEs cannot hold the shard's slots (sip.ack_timeout_s).
        self._loop.call_soon_threadsafe(
            self._loop.call_later, self.settings.ack_timeout_s,
            lambda: self._pj.submit(lambda: self._check_acked(pj_id, setup)),
        )

    def _check_acked(self, pj_id: int, setup: CallSetup) -> None:
        call = self._live_call(pj_id, setup)
        if call is None or call.confirmed:
            return
        self._stats.ack_timeouts += 1
        log.warning("call %s: no ACK within %.1f s of the 200 OK, released",
                    setup.session_id, self.settings.ack_timeout_s)
        tag = self._local_tags.get(setup.sip_call_id)
        udp = self.addresses.get("udp")
        if tag and udp and call.invite_text:
            # End the dialog through pjsip itself so its slot is free now (DialogRelease);
            # DISCONNECTED then closes the call with this reason.
            call.end_reason = "ack_timeout"
            if send_release(call.invite_text, tag, udp[0], udp[1]):
                return
        self._hangup(setup.session_id, "ack_timeout")

    def _answer(self, call: GatewayCall, code: int) -> None:
        prm = pj.CallOpParam()
        prm.statusCode = code
        try:
            call.answer(prm)
        except pj.Error as exc:
            log.debug("answer %d failed: %s", code, exc.info())

    def _reject(self, call: GatewayCall, code: int, headers: dict[str, str] | None = None) -> None:
        prm = pj.CallOpParam()
        prm.statusCode = code
        for name, value in (headers or {}).items():
            header = pj.SipHeader()
            header.hName, header.hValue = name, value
            prm.txOption.headers.append(header)
        try:
            call.hangup(prm)
        except pj.Error as exc:
            log.debug("reject %d failed: %s", code, exc.info())

    def _spawn(self, coro: Coroutine[Any, Any, None], opening: str = "") -> None:
        """Start ``coro`` on the agent's loop from the pjsua thread (FIFO with other spawns)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._start_task, coro, opening)

    def _start_task(self, coro: Coroutine[Any, Any, None], opening: str) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if opening:
            self._opening[opening] = task
