"""The SIP caller's child process: a pjsua2 user agent that executes SipCaller's commands.

Run as ``python -m theo_ray.sim.sip_caller_agent SETTINGS_JSON`` by
:class:`theo_ray.sim.sip_caller.SipCaller` (pjsua2 allows one Endpoint per process, so the
caller cannot share the parent's). It reads :class:`Request` frames on stdin, runs each on
its PjsuaThread and writes replies and :class:`CallerEvent` frames to the real stdout;
anything C code prints goes to stderr. Only this process imports pjsua2.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import BinaryIO

import msgspec

from theo_ray.sim.sip_caller_protocol import (
    FRAME,
    CallerEvent,
    CallerSettings,
    Command,
    Dial,
    EventKind,
    GoSilent,
    Hangup,
    Hold,
    Message,
    OfferlessReinvite,
    Ready,
    Reply,
    Request,
    Shutdown,
    Unhold,
)

# pjsua codec ids for the names a Dial may offer.
_CODEC_IDS = {
    "G722": "G722/16000/1",
    "PCMU": "PCMU/8000/1",
    "PCMA": "PCMA/8000/1",
    "L16": "L16/16000/1",
    "L16/8000": "L16/8000/1",
}


def _child_main(settings_json: str) -> None:
    settings = msgspec.json.decode(settings_json, type=CallerSettings)
    # Frames own the real stdout; anything C code prints goes to stderr instead.
    frames_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    logging.basicConfig(level=logging.WARNING, format="caller[%(process)d] %(message)s")
    agent = _CallerAgent(settings, sys.stdin.buffer, frames_out)
    agent.serve()


class _CallerAgent:
    """The child's pjsua2 user agent: executes Commands on its PjsuaThread."""

    def __init__(self, settings: CallerSettings, frames_in: BinaryIO, frames_out: BinaryIO):
        import pjsua2 as pj

        from theo_ray.sip.pj_thread import PjLogWriter, PjsuaThread

        self.pj = pj
        self.settings = settings
        self.frames_in = frames_in
        self.frames_out = frames_out
        self._send_lock = threading.Lock()
        self._encoder = msgspec.msgpack.Encoder()
        self._log_writer = PjLogWriter(logging.getLogger("theo_ray.sim.pjsip"))
        self.thread = PjsuaThread("sip-caller", pj.Endpoint, self._setup, poll_interval_ms=5)
        self.account = None
        self.call = None
        self._retired = None
        self.dial: Dial | None = None
        self.address: tuple[str, int] = ("", 0)
        self.player = None
        self.recorder = None
        self.local_hangup = False
        self.invites_answered = 0

    # -- plumbing
    def send(self, message: Message) -> None:
        data = self._encoder.encode(message)
        with self._send_lock:
            try:
                self.frames_out.write(FRAME.pack(len(data)) + data)
            except (OSError, ValueError):
                pass  # parent gone; the serve loop ends on EOF

    def event(self, kind: EventKind, **fields) -> None:
        self.send(CallerEvent(kind=kind, at=time.monotonic(), **fields))

    def serve(self) -> None:
        self.thread.start()
        self.send(Ready(*self.address))
        decoder = msgspec.msgpack.Decoder(Request)
        while True:
            header = self.frames_in.read(FRAME.size)
            if len(header) < FRAME.size:
                break  # parent closed the pipe
            request = decoder.decode(self.frames_in.read(FRAME.unpack(header)[0]))
            command = request.command
            if isinstance(command, GoSilent):
                self.thread.pause(command.seconds)
                self.send(Reply(request.seq, True))
                continue
            if isinstance(command, Shutdown):
                self.thread.resume()
                self.thread.stop(self._hangup_quietly)
                self.send(Reply(request.seq, True))
                break
            future = self.thread.submit(lambda c=command: self.execute(c))
            try:
                future.result(timeout=30.0 + max(0.0, self.thread.paused_for()))
                self.send(Reply(request.seq, True))
            except Exception as exc:  # noqa: BLE001 - reported to the parent
                error = exc.info() if isinstance(exc, self.pj.Error) else repr(exc)
                self.send(Reply(request.seq, False, error))
        self.thread.stop(self._hangup_quietly)
        os._exit(0)  # pjsua2 objects must not be finalised after libDestroy

    # -- pjsua thread
    def _setup(self, ep) -> None:
        pj, s = self.pj, self.settings
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.userAgent = "theo-sip-caller"
        cfg.medConfig.threadCnt = 0
        cfg.medConfig.noVad = True
        cfg.logConfig.level = s.log_level
        cfg.logConfig.consoleLevel = s.log_level
        cfg.logConfig.writer = self._log_writer
        ep.libInit(cfg)
        ep.audDevManager().setNullDev()
        for info in ep.codecEnum2():
            ep.codecSetPriority(info.codecId, 0)
        for rank, name in enumerate(s.codecs):
            ep.codecSetPriority(_CODEC_IDS[name.upper()], 255 - rank)
        tcfg = pj.TransportConfig()
        tcfg.port = s.port
        tcfg.boundAddress = s.host
        if s.transport == "tls":
            tcfg.tlsConfig.CaListFile = s.tls_ca_file
            tcfg.tlsConfig.verifyServer = bool(s.tls_ca_file)
            tcfg.tlsConfig.certFile = s.tls_cert_file
            tcfg.tlsConfig.privKeyFile = s.tls_key_file
        kind = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP, "tls": pj.PJSIP_TRANSPORT_TLS}[s.transport]
        tid = ep.transportCreate(kind, tcfg)
        host, _, port = ep.transportGetInfo(tid).localName.rpartition(":")
        self.address = (host.strip("[]"), int(port))
        ep.libStart()

        acfg = pj.AccountConfig()
        acfg.idUri = f'"{s.display_name}" <sip:{s.user}@{host}:{port}>'
        acfg.callConfig.timerUse = {
            "inactive": pj.PJSUA_SIP_TIMER_INACTIVE,
            "optional": pj.PJSUA_SIP_TIMER_OPTIONAL,
            "required": pj.PJSUA_SIP_TIMER_REQUIRED,
            "always": pj.PJSUA_SIP_TIMER_ALWAYS,
        }[s.session_timers]
        acfg.callConfig.timerSessExpiresSec = s.session_expires
        acfg.callConfig.timerMinSESec = s.min_se
        acfg.sipConfig.transportId = tid
        acfg.mediaConfig.useLoopMedTp = s.media == "external"
        if s.srtp:
            acfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_OPTIONAL
            acfg.mediaConfig.srtpSecureSignaling = 0
        acfg.mediaConfig.transportConfig.boundAddress = s.host
        acfg.mediaConfig.transportConfig.port = 0
        self.account = pj.Account()
        self.account.create(acfg, True)

    def execute(self, command: Command) -> None:
        pj = self.pj
        if isinstance(command, Dial):
            if self.call is not None:
                raise RuntimeError("a call is already up")
            if self.settings.media == "external" and not command.local_rtp_port:
                raise RuntimeError("external media needs local_rtp_host/local_rtp_port")
            self.dial = command
            self.answer_codec = None
            self.local_hangup = False
            self.invites_answered = 0
            prm = pj.CallOpParam(True)
            for name, value in command.headers.items():
                header = pj.SipHeader()
                header.hName, header.hValue = name, value
                prm.txOption.headers.append(header)
            if self.settings.delayed_offer:
                prm.opt.flag |= pj.PJSUA_CALL_NO_SDP_OFFER
            self.call = _CallerCall(self, self.account)
            self.call.makeCall(command.uri, prm)
        elif self.call is None:
            raise RuntimeError("no call")
        elif isinstance(command, Hold):
            self.call.setHold(pj.CallOpParam(True))
        elif isinstance(command, OfferlessReinvite):
            prm = pj.CallOpParam(True)
            prm.opt.flag = pj.PJSUA_CALL_NO_SDP_OFFER
            self.call.reinvite(prm)
        elif isinstance(command, Unhold):
            prm = pj.CallOpParam(True)
            prm.opt.flag = pj.PJSUA_CALL_UNHOLD
            self.call.reinvite(prm)
        elif isinstance(command, Hangup):
            self.local_hangup = True
            self.call.hangup(pj.CallOpParam(True))

    def _hangup_quietly(self) -> None:
        if self.call is not None:
            try:
                self.local_hangup = True
                self.call.hangup(self.pj.CallOpParam(True))
            except self.pj.Error:
                pass
            for _ in range(20):  # let the BYE leave (bounded)
                self.thread.endpoint.libHandleEvents(10)

    # -- callbacks (pjsua thread)
    def on_sdp_created(self, prm) -> None:
        dial = self.dial
        if self.settings.media == "external" and dial is not None:
            # Our offer, or (delayed offer) our answer in the ACK: either way the audio
            # address must be the parent's RTP socket, not pjsua's loop transport.
            from theo_ray.sip.sdp import SdpError, parse_offer
            from theo_ray.sip.sdp_retarget import retarget_audio

            prm.sdp.wholeSdp = retarget_audio(
                prm.sdp.wholeSdp, dial.local_rtp_host or self.settings.host, dial.local_rtp_port
            )
            if dial.srtp_key and not prm.remSdp.wholeSdp:
                from theo_ray.sip.sdes import secure_offer

                prm.sdp.wholeSdp = secure_offer(prm.sdp.wholeSdp, dial.srtp_key)
            if prm.remSdp.wholeSdp:
                try:
                    self.answer_codec = parse_offer(prm.sdp.wholeSdp).formats[0]
                except SdpError:
                    self.answer_codec = None

    def on_call_state(self, call, prm) -> None:
        pj = self.pj
        info = call.getInfo()
        if info.state == pj.PJSIP_INV_STATE_EARLY and info.lastStatusCode:
            self.event("progress", status=info.lastStatusCode, reason=info.lastReason)
        elif info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.event("confirmed", status=info.lastStatusCode)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            # A new Dial may come as soon as the parent hears of this; the old Call and
            # its player/recorder are freed after this callback returns, on this thread.
            self._retired = (self.call, self.player, self.recorder)
            self.call, self.player, self.recorder = None, None, None
            self.thread.submit(self._forget_retired)
            self.event(
                "disconnected",
                status=info.lastStatusCode,
                reason="local" if self.local_hangup else "remote",
            )

    def _forget_retired(self) -> None:
        self._retired = None

    def on_tsx_state(self, call, prm) -> None:
        pj = self.pj
        event = prm.e
        if event.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        body = event.body.tsxState
        tsx = body.tsx
        if tsx.method == "BYE" and tsx.role == pj.PJSIP_ROLE_UAS:
            self.event("bye_received")
            return
        if (
            tsx.method == "INVITE"
            and tsx.role == pj.PJSIP_ROLE_UAC
            and body.type == pj.PJSIP_EVENT_RX_MSG
            and 200 <= tsx.statusCode < 300
        ):
            self._report_answer(body.src.rdata.wholeMsg, tsx.statusCode)

    def _report_answer(self, message: str, status: int) -> None:
        from theo_ray.sip.invite import parse_invite
        from theo_ray.sip.sdp import SdpError, parse_offer

        kind: EventKind = "answered" if self.invites_answered == 0 else "reanswered"
        self.invites_answered += 1
        body = parse_invite(message).body
        try:
            answer = parse_offer(body)
        except SdpError as exc:
            self.event(kind, status=status, sdp=body, reason=f"unreadable answer: {exc}")
            return
        codec = answer.formats[0]
        if self.settings.delayed_offer and getattr(self, "answer_codec", None) is not None:
            codec = self.answer_codec  # the far end offered; the codec is the one we answered
        self.event(
            kind,
            status=status,
            sdp=body,
            remote_host=answer.connection_host,
            remote_port=answer.audio_port,
            codec=codec.encoding.upper(),
            payload_type=codec.payload_type,
            direction=answer.direction,
        )

    def on_media_state(self, call, prm) -> None:
        pj, dial = self.pj, self.dial
        if self.settings.media != "pjsua" or dial is None or self.player is not None:
            return
        try:
            audio = call.getAudioMedia(-1)
        except pj.Error:
            return
        try:
            if dial.record_wav:
                self.recorder = pj.AudioMediaRecorder()
                self.recorder.createRecorder(dial.record_wav)
                audio.startTransmit(self.recorder)
            if dial.play_wav:
                self.player = pj.AudioMediaPlayer()
                self.player.createPlayer(dial.play_wav, 0 if dial.play_loop else pj.PJMEDIA_FILE_NO_LOOP)
                self.player.startTransmit(audio)
        except pj.Error as exc:
            self.event("error", reason=f"media: {exc.info()}")
            return
        self.event("media_active")


def _caller_call_class():
    import pjsua2 as pj

    class CallerCall(pj.Call):
        def __init__(self, agent: _CallerAgent, account) -> None:
            super().__init__(account)
            self.agent = agent

        def onCallState(self, prm) -> None:
            self.agent.on_call_state(self, prm)

        def onCallTsxState(self, prm) -> None:
            self.agent.on_tsx_state(self, prm)

        def onCallSdpCreated(self, prm) -> None:
            self.agent.on_sdp_created(prm)

        def onCallMediaState(self, prm) -> None:
            self.agent.on_media_state(self, prm)

    return CallerCall


def _CallerCall(agent: _CallerAgent, account):  # noqa: N802 - builds the pjsua2 subclass lazily
    # pjsua2 is imported only in the child process; the parent never loads it.
    global _CALLER_CALL
    if _CALLER_CALL is None:
        _CALLER_CALL = _caller_call_class()
    return _CALLER_CALL(agent, account)


_CALLER_CALL = None


if __name__ == "__main__":
    _child_main(sys.argv[1])
