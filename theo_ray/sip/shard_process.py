"""ShardProcess: runs one gateway shard's pjsua in a child process and keeps it listening.

pjsip aborts its process on some inputs (an assertion, a bad pool access); the gateway
keeps that crash domain out of the Ray actor. The actor owns a ShardProcess, which keeps
two children: the *active* one listening on the shard's port, and a *standby* that has
already imported pjsua2 and waits. When the active child dies the standby is told to
listen at once (the port is the one the dead child had), a new standby is started, the
death is counted and logged with the summary of the last datagram the dead child
received (its DatagramRecord), and every call that child held is closed with reason
``gateway_crash`` so no CallActor is left orphaned.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

import msgspec

from theo_ray.sip.datagram_record import DatagramRecord
from theo_ray.sip.messages import CallEnded, ListenAddress, MediaAnswer
from theo_ray.sip.router import CallRouter
from theo_ray.sip.settings import SipSettings
from theo_ray.sip.dialog_release import DialogRecord, send_callee_bye
from theo_ray.sip.tls import check_tls_files
from theo_ray.sip.shard_link import (
    DialogUp,
    Call,
    CloseCall,
    GetSessions,
    GetStats,
    Hangup,
    LinkClosed,
    OpenCall,
    Ready,
    Response,
    ShardLink,
    Start,
    Stop,
    UpdateCall,
)
from theo_ray.sip.stats import GatewayStats, add_stats

log = logging.getLogger("theo.sip.shard")

ShardState = Literal["starting", "listening", "restarting", "stopped", "failed"]


class ShardStatus(msgspec.Struct):
    """What ``theo status`` shows for one shard."""

    name: str
    state: ShardState
    pid: int = 0
    addresses: list[ListenAddress] = msgspec.field(default_factory=list)
    restarts: int = 0  # shard processes that died and were replaced
    last_crash: str = ""  # exit status and the last datagram the dead process received
    last_restart_ms: float = 0.0  # death noticed -> listening again
    calls_lost: int = 0  # calls closed because their shard process died
    dialogs_ended: int = 0  # of those, confirmed dialogs Theo sent the PBX a BYE for
    recycles: int = 0  # idle shard processes replaced because pjsua's call slots leaked
    active_calls: int = 0


class _Child:
    def __init__(self, process: asyncio.subprocess.Process, link: ShardLink) -> None:
        self.process = process
        self.link = link
        self.serving: asyncio.Task | None = None


class ShardProcess:
    def __init__(self, settings: SipSettings, name: str, router: CallRouter, *, record_dir: str = "") -> None:
        self.settings = settings
        self.name = name
        self._router = router
        folder = Path(record_dir or tempfile.gettempdir()) / "theo-sip"
        self._record = DatagramRecord(folder / f"{name or 'shard'}-{os.getpid()}.last")
        self._active: _Child | None = None
        self._standby: asyncio.Task[_Child] | None = None
        self._live: dict[str, float] = {}  # sessions whose open_call went through us
        # open_call still at the router, by session: the shard process gives up waiting
        # after sip.answer_timeout_s (503) and sends CloseCall while the router still opens.
        self._opening: dict[str, asyncio.Future[None]] = {}
        self._dialogs: dict[str, DialogRecord] = {}  # confirmed dialogs: BYE'd if the shard dies
        self._status = ShardStatus(name=name, state="starting")
        self._watch: asyncio.Task | None = None
        self._stopping = False
        self._recycling = False
        self._restart_lock = asyncio.Lock()
        self._health: asyncio.Task | None = None
        self._retired_stats = GatewayStats()  # counts of the processes this shard replaced
        self._last_polled = GatewayStats()  # the active process's counts at the last poll

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> list[ListenAddress]:
        if self.settings.tls.enabled:
            # Here, in the gateway actor, so that ready() (and `theo up`) raise the ConfigError
            # naming the bad file, instead of a shard process that exits before Ready.
            await asyncio.to_thread(check_tls_files, self.settings.tls)
        child = await self._spawn()
        await self._activate(child, self.settings)
        self._standby = asyncio.create_task(self._spawn())
        self._health = asyncio.create_task(self._watch_slots())
        return self._status.addresses

    async def _watch_slots(self, interval_s: float = 1.0) -> None:
        """pjsua (4 call slots, compile-time) sometimes keeps a slot for a session it never
        ends (seen under the SIP torture catalogue with a slow CallSupervisor): once its
        own 486s start while the shard holds no call, the process is replaced by the
        standby, which costs no call and ~50 ms of listening."""
        seen = 0
        while not self._stopping:
            await asyncio.sleep(interval_s)
            if self._active is None or self._recycling:
                continue
            try:
                await self.stats()
                stats = self._last_polled
            except Exception:  # noqa: BLE001 - a dying shard is the crash watcher's business
                continue
            if stats.busy_while_free > seen and stats.active_calls == 0 and not self._live:
                log.warning("SIP shard %s: pjsua refuses calls with no call up (%d times): recycling its process",
                            self.name, stats.busy_while_free)
                self._recycling = True
                child = self._active
                try:
                    await child.link.ask(Stop(), timeout=5.0)
                except (LinkClosed, TimeoutError, asyncio.TimeoutError):
                    child.process.kill()
                seen = 0
            else:
                seen = stats.busy_while_free

    async def stop(self) -> None:
        """Hang up the shard's calls, stop its pjsua and the standby."""
        self._stopping = True
        for task in (self._watch, self._health):
            if task is not None:
                task.cancel()
        child, self._active = self._active, None
        if child is not None:
            try:
                await child.link.ask(Stop(), timeout=10.0)
            except (LinkClosed, TimeoutError, asyncio.TimeoutError):
                pass
            await self._end(child)
        if self._standby is not None:
            standby = await self._standby
            await self._end(standby)
        self._status.state = "stopped"
        self._record.path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ requests from the gateway

    async def hangup(self, session_id: str) -> bool:
        response = await self._ask(Hangup(session_id))
        return bool(response and response.done)

    async def stats(self) -> GatewayStats:
        """Counted since the shard started, across the processes it went through (a crashed
        one's counts up to its last poll, at most a second old)."""
        response = await self._ask(GetStats())
        current = response.stats if response and response.stats else GatewayStats()
        self._last_polled = current
        return add_stats(self._retired_stats, current)

    async def active_sessions(self) -> list[str]:
        response = await self._ask(GetSessions())
        return list(response.sessions) if response else []

    def status(self) -> ShardStatus:
        return msgspec.structs.replace(self._status, active_calls=len(self._live))

    async def _ask(self, call: Call) -> Response | None:
        child = self._active
        if child is None:
            return None
        try:
            response = await child.link.ask(call, timeout=10.0)
        except (LinkClosed, TimeoutError, asyncio.TimeoutError):
            return None
        if response.error:
            raise RuntimeError(response.error)
        return response

    # ------------------------------------------------------------------ requests from the shard

    async def _handle(self, child: _Child, call: Call) -> Response:
        if isinstance(call, OpenCall):
            session_id = call.setup.session_id
            opened = self._opening[session_id] = asyncio.get_running_loop().create_future()
            try:
                answer: MediaAnswer = await self._router.open_call(call.setup)
                if self._active is not child:
                    # The shard died while the call was being opened: nobody holds its dialog.
                    await self._router.close_call(CallEnded(session_id, "gateway_crash"))
                    return Response(0, error="the shard process is gone")
                self._live[session_id] = time.monotonic()
            finally:
                opened.set_result(None)
                if self._opening.get(session_id) is opened:
                    del self._opening[session_id]
            return Response(0, answer=answer)
        if isinstance(call, UpdateCall):
            await self._router.update_call(call.session_id, call.remote)
            return Response(0, done=True)
        if isinstance(call, DialogUp):
            if call.dialog.session_id in self._live:
                self._dialogs[call.dialog.session_id] = call.dialog
            return Response(0, done=True)
        if isinstance(call, CloseCall):
            opening = self._opening.get(call.ended.session_id)
            if opening is not None:
                # close_call must never overtake open_call at the router: the supervisor
                # would find nothing to close, then register the call when its open
                # returns, and count it live for ever (measured: `theo bench sip-torture`,
                # open_call slower than sip.answer_timeout_s on a loaded node).
                await asyncio.shield(opening)
            self._live.pop(call.ended.session_id, None)
            self._dialogs.pop(call.ended.session_id, None)
            await self._router.close_call(call.ended)
            return Response(0, done=True)
        raise ValueError(f"the gateway does not serve {type(call).__name__}")

    # ------------------------------------------------------------------ children

    async def _spawn(self) -> _Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "theo_ray.sip.shard_main",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=8 * 1024 * 1024,
        )
        assert process.stdin is not None and process.stdout is not None
        return _Child(process, ShardLink(process.stdout, process.stdin))

    async def _activate(self, child: _Child, settings: SipSettings) -> None:
        await child.link.send(Start(settings, self.name, str(self._record.path)))
        ready = await asyncio.wait_for(child.link.receive(), 30.0)
        if not isinstance(ready, Ready):
            raise RuntimeError(f"shard {self.name}: expected Ready, got {type(ready).__name__}")
        child.serving = asyncio.create_task(child.link.serve(lambda call: self._handle(child, call)))
        self._active = child
        self._status.state = "listening"
        self._status.pid = ready.pid
        self._status.addresses = ready.addresses
        # A restart must bind the same ports (a first start may have asked for port 0).
        port = ready.addresses[0].port if ready.addresses else settings.port
        tls_port = next((a.port for a in ready.addresses if a.transport == "tls"), settings.tls.port)
        self.settings = msgspec.structs.replace(
            settings, port=port, tls=msgspec.structs.replace(settings.tls, port=tls_port))
        self._watch = asyncio.create_task(self._watch_child(child))

    async def _watch_child(self, child: _Child) -> None:
        code = await child.process.wait()
        if self._stopping or self._active is not child:
            return
        await self._replace(child, code)

    async def _replace(self, dead: _Child, code: int) -> None:
        noticed = time.monotonic()
        async with self._restart_lock:
            self._active = None
            self._status.state = "restarting"
            self._retired_stats = add_stats(self._retired_stats, self._last_polled)
            self._last_polled = GatewayStats()
            if self._recycling:
                self._status.recycles += 1
                self._recycling = False
            else:
                self._status.restarts += 1
                last = self._record.read() or "none recorded"
                self._status.last_crash = f"exit {code}; last datagram: {last}"[:600]
                log.error("SIP shard %s (pid %s) died with exit status %s; last datagram received: %s",
                          self.name, dead.process.pid, code, last)
            lost = list(self._live)
            self._live.clear()
            orphaned = [self._dialogs.pop(s) for s in lost if s in self._dialogs]
            self._dialogs.clear()
            # The PBX still holds these dialogs: Theo's BYE ends the caller's leg now (its
            # dialplan then takes the caller to a human), not after its RTP timeout.
            for dialog in orphaned:
                asyncio.get_running_loop().run_in_executor(
                    None, send_callee_bye, dialog, self.settings.host, 'SIP;cause=500;text="Theo gateway restarted"')
            self._status.dialogs_ended += len(orphaned)
            try:
                standby = await self._standby if self._standby is not None else await self._spawn()
                if standby.process.returncode is not None:
                    standby = await self._spawn()
                await self._activate(standby, self.settings)
            except Exception as exc:  # noqa: BLE001 - a shard that cannot listen is reported, not raised
                self._status.state = "failed"
                log.error("SIP shard %s could not listen again: %s", self.name, exc)
                return
            finally:
                self._standby = asyncio.create_task(self._spawn())
            self._status.last_restart_ms = (time.monotonic() - noticed) * 1000.0
            log.warning("SIP shard %s listening again after %.0f ms (pid %s)",
                        self.name, self._status.last_restart_ms, self._status.pid)
        # The dead process took these dialogs with it: release their CallActors now.
        self._status.calls_lost += len(lost)
        for session_id in lost:
            try:
                await self._router.close_call(CallEnded(session_id, "gateway_crash"))
            except Exception as exc:  # noqa: BLE001 - logged; the supervisor's reaper is the backstop
                log.warning("close_call(%s) after the shard crash failed: %s", session_id, exc)
        await self._end(dead)

    async def _end(self, child: _Child) -> None:
        child.link.close()
        if child.serving is not None:
            child.serving.cancel()
        if child.process.returncode is None:
            try:
                await asyncio.wait_for(child.process.wait(), 5.0)
            except (TimeoutError, asyncio.TimeoutError):
                child.process.kill()
                await child.process.wait()
