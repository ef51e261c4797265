"""The AMI client behind the AmiBridge actor (testable without Ray).

Owns one logged-in AMI session to the PBX and everything Theo does through it:
- connection: connect, login, reconnect with exponential backoff;
- PBX health (GAP 11): a Ping every `ping_interval_s`; unhealthy once no answer came for
  `unhealthy_after_s` (2 s); three unanswered Pings in a row close the connection, so a
  half-open TCP session (PBX host gone without FIN) turns into a reconnect;
- channel discovery (GAP 7): events keep session id -> channel name current
  (ChannelTracker) and `Status` confirms it right before acting, so a renamed or
  masqueraded channel is still found;
- `redirect()` / `hangup()` of the caller's channel: timed, idempotent (a repeated call
  returns the first result marked `already_done`; a hang-up after a transfer is refused so
  the caller keeps talking to the human), and retried once after a lost connection only
  after Status shows the first attempt did not already happen.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from panoramisk.message import Message

from theo_ray.asterisk.ami_protocol import TheoAmiManager
from theo_ray.asterisk.channel_tracker import SESSION_VARIABLE, ChannelTracker, header
from theo_ray.asterisk.errors import (
    AmiActionFailed,
    AmiAuthenticationFailed,
    AmiConnectionLost,
    AmiError,
    AmiNotConnected,
    AmiTimeout,
    ChannelGone,
    SessionAlreadyEnded,
)
from theo_ray.asterisk.results import ActionKind, AmiActionResult, AmiHealth, AmiStats, ChannelInfo
from theo_ray.asterisk.settings import AmiSettings

log = logging.getLogger(__name__)

# Marks the caller's own channel in the dialplan (not inherited by the AI leg).
LEG_VARIABLE = "THEO_LEG"
CALLER_LEG = "caller"
STATUS_VARIABLES = f"{SESSION_VARIABLE},{LEG_VARIABLE}"
PINGS_LOST_BEFORE_RECONNECT = 3
REDIRECT_TARGET_MS = 500.0  # GAP 6/11: a Redirect slower than this is logged


class AmiClient:
    def __init__(
        self,
        settings: AmiSettings,
        secret: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._settings = settings
        self._secret = secret
        self._clock = clock
        self._ssl = ssl_context if ssl_context is not None else _ssl_context(settings)
        self._stats = AmiStats()
        self._tracker = ChannelTracker(settings.remembered_sessions)
        self._manager: TheoAmiManager | None = None
        self._logged_in = False
        self._logged_in_at: float | None = None
        self._last_pong_at: float | None = None
        self._last_rtt_ms: float | None = None
        self._pings_lost = 0
        self._last_error = "not started"
        self._stopping = False
        self._tasks: list[asyncio.Task] = []
        self._lost: asyncio.Event | None = None
        self._login_event: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        # Final actions per session: finished ones (idempotency) and the one running now.
        self._done: OrderedDict[str, tuple[ActionKind, AmiActionResult]] = OrderedDict()
        self._running: dict[str, tuple[ActionKind, asyncio.Task]] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._tasks:
            return
        self._stopping = False
        self._last_error = "connecting"
        self._lost = asyncio.Event()
        self._login_event = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._connection_loop(), name="ami-connection"),
            asyncio.create_task(self._ping_loop(), name="ami-ping"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        if self._lost is not None:
            self._lost.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._manager is not None:
            self._manager.close()
            self._manager = None
        self._logged_in = False
        self._last_error = "stopped"

    async def wait_logged_in(self, timeout_s: float) -> bool:
        """True once a logged-in session exists (waits at most `timeout_s`)."""
        if self._logged_in:
            return True
        if self._login_event is None:
            return False
        try:
            await asyncio.wait_for(self._login_event.wait(), timeout_s)
        except asyncio.TimeoutError:
            return False
        return self._logged_in

    # ------------------------------------------------------------------ health and stats

    def health(self) -> AmiHealth:
        now = self._clock()
        manager = self._manager
        connected = manager is not None and manager.is_open
        pong_age = None if self._last_pong_at is None else now - self._last_pong_at
        last_alive = self._last_pong_at if self._last_pong_at is not None else self._logged_in_at
        if not connected:
            healthy, reason = False, self._last_error
        elif not self._logged_in:
            healthy, reason = False, self._last_error or "not logged in"
        elif last_alive is None or now - last_alive > self._settings.unhealthy_after_s:
            silent = 0.0 if last_alive is None else now - last_alive
            healthy, reason = False, f"no answer to Ping for {silent:.1f} s"
        else:
            healthy, reason = True, "ok"
        return AmiHealth(
            healthy=healthy,
            connected=connected,
            logged_in=self._logged_in,
            reason=reason,
            last_pong_age_s=pong_age,
            last_ping_rtt_ms=self._last_rtt_ms,
            ami_version=manager.ami_version if manager is not None else "",
            reconnects=self._stats.reconnects,
        )

    def stats(self) -> AmiStats:
        return msgspec.structs.replace(self._stats)

    # ------------------------------------------------------------------ actions

    async def ping(self) -> float:
        """One AMI Ping; returns the round trip in ms."""
        started = self._clock()
        self._stats.pings_sent += 1
        response = await self._call({"Action": "Ping"}, self._settings.unhealthy_after_s)
        if not _is_success(response):
            raise AmiActionFailed("Ping", header(_first(response), "Message"))
        self._last_pong_at = self._clock()
        self._last_rtt_ms = (self._last_pong_at - started) * 1000.0
        self._stats.pongs += 1
        self._pings_lost = 0
        return self._last_rtt_ms

    async def find_channel(self, session_id: str) -> ChannelInfo:
        """The caller's channel of the session as Status reports it now.

        Tries the channel events pointed at first, then scans all channels for the one whose
        THEO_SESSION_ID matches (and THEO_LEG=caller). Raises ChannelGone when none has it.
        """
        self._stats.status_confirmations += 1
        hint = self._tracker.channel_of(session_id)
        if hint:
            for info in await self._status(hint):
                if _is_caller_of(info, session_id):
                    self._tracker.confirm(session_id, info.channel, info.uniqueid)
                    return info
        self._stats.status_full_scans += 1
        candidates = [info for info in await self._status(None) if _is_caller_of(info, session_id)]
        if not candidates:
            raise ChannelGone(session_id, "no channel has THEO_SESSION_ID=" + session_id)
        candidates.sort(key=lambda info: info.variables.get(LEG_VARIABLE) != CALLER_LEG)
        info = candidates[0]
        self._tracker.confirm(session_id, info.channel, info.uniqueid)
        return info

    async def redirect(self, session_id: str, context: str, exten: str, priority: int = 1) -> AmiActionResult:
        """AMI Redirect of the session's caller channel to context,exten,priority."""
        target = f"{context},{exten},{priority}"
        return await self._final_action(
            "redirect", session_id, lambda: self._do_redirect(session_id, context, exten, priority, target)
        )

    async def hangup(self, session_id: str, cause: int = 16) -> AmiActionResult:
        """AMI Hangup of the session's caller channel (Q.850 cause, 16 = normal clearing)."""
        return await self._final_action("hangup", session_id, lambda: self._do_hangup(session_id, cause))

    # ------------------------------------------------------------------ internals: actions

    async def _final_action(
        self, kind: ActionKind, session_id: str, run: Callable[[], Awaitable[AmiActionResult]]
    ) -> AmiActionResult:
        done = self._done.get(session_id)
        if done is not None:
            done_kind, result = done
            if done_kind != kind:
                raise SessionAlreadyEnded(session_id, done_kind)
            return msgspec.structs.replace(result, already_done=True, duration_ms=0.0)
        running = self._running.get(session_id)
        if running is not None:
            running_kind, task = running
            if running_kind != kind:
                raise SessionAlreadyEnded(session_id, running_kind)
            result = await asyncio.shield(task)
            return msgspec.structs.replace(result, already_done=True, duration_ms=0.0)
        # The action runs as its own task: a caller that gives up (cancelled) does not cancel
        # a Redirect half-way, and its outcome is still remembered.
        task = asyncio.create_task(run(), name=f"ami-{kind}-{session_id}")
        self._running[session_id] = (kind, task)
        task.add_done_callback(lambda finished: self._finish(session_id, kind, finished))
        return await asyncio.shield(task)

    def _finish(self, session_id: str, kind: ActionKind, task: asyncio.Task) -> None:
        self._running.pop(session_id, None)
        if task.cancelled() or task.exception() is not None:
            return  # not remembered: a later call tries again (after Status)
        self._done[session_id] = (kind, task.result())
        while len(self._done) > self._settings.remembered_sessions:
            self._done.popitem(last=False)

    async def _do_redirect(
        self, session_id: str, context: str, exten: str, priority: int, target: str
    ) -> AmiActionResult:
        started = self._clock()
        for attempt in range(2):
            await self._ready()
            info = await self.find_channel(session_id)
            if info.context == context and info.exten == exten:
                # Already there: an earlier Redirect ran but its answer was lost (connection
                # dropped, or timed out); sending another would restart the caller's queue.
                return self._result("redirect", session_id, info.channel, started, target, "already at target")
            fields = {
                "Action": "Redirect",
                "Channel": info.channel,
                "Context": context,
                "Exten": exten,
                "Priority": str(priority),
            }
            try:
                response = _first(await self._call(fields, self._settings.action_timeout_s))
            except AmiConnectionLost:
                if attempt == 0:
                    continue
                raise
            message = header(response, "Message")
            if _is_success(response):
                self._stats.redirects += 1
                result = self._result("redirect", session_id, info.channel, started, target, message)
                if result.duration_ms > REDIRECT_TARGET_MS:
                    log.warning("AMI Redirect of %s took %.0f ms", session_id, result.duration_ms)
                return result
            self._stats.action_errors += 1
            if _means_channel_gone(message):
                if attempt == 0:
                    continue  # renamed between Status and Redirect: look it up again
                raise ChannelGone(session_id, message)
            raise AmiActionFailed("Redirect", message)
        raise ChannelGone(session_id, "channel vanished while redirecting")

    async def _do_hangup(self, session_id: str, cause: int) -> AmiActionResult:
        started = self._clock()
        lost_once = False
        for attempt in range(2):
            await self._ready()
            try:
                info = await self.find_channel(session_id)
            except ChannelGone:
                if lost_once:
                    # Our first Hangup ran; only its answer was lost with the connection.
                    return self._result("hangup", session_id, "", started, "", "gone after reconnect")
                raise
            fields = {"Action": "Hangup", "Channel": info.channel, "Cause": str(cause)}
            try:
                response = _first(await self._call(fields, self._settings.action_timeout_s))
            except AmiConnectionLost:
                if attempt == 0:
                    lost_once = True
                    continue
                raise
            message = header(response, "Message")
            if _is_success(response):
                self._stats.hangups += 1
                return self._result("hangup", session_id, info.channel, started, "", message)
            self._stats.action_errors += 1
            if _means_channel_gone(message):
                if attempt == 0:
                    continue
                raise ChannelGone(session_id, message)
            raise AmiActionFailed("Hangup", message)
        raise ChannelGone(session_id, "channel vanished while hanging up")

    def _result(
        self, kind: ActionKind, session_id: str, channel: str, started: float, target: str, message: str
    ) -> AmiActionResult:
        return AmiActionResult(
            action=kind,
            session_id=session_id,
            channel=channel,
            already_done=False,
            duration_ms=(self._clock() - started) * 1000.0,
            target=target,
            message=message,
        )

    async def _status(self, channel: str | None) -> list[ChannelInfo]:
        fields = {"Action": "Status", "Variables": STATUS_VARIABLES}
        if channel:
            fields["Channel"] = channel
        answer = await self._call(fields, self._settings.action_timeout_s)
        if not isinstance(answer, list):
            if _is_success(answer):
                return []
            message = header(answer, "Message")
            if _means_channel_gone(message):
                return []
            self._stats.action_errors += 1
            raise AmiActionFailed("Status", message)
        return [_channel_info(event) for event in answer if header(event, "Event") == "Status"]

    async def _ready(self) -> None:
        if not await self.wait_logged_in(self._settings.action_timeout_s):
            raise AmiNotConnected(self._last_error)

    async def _call(self, fields: dict[str, str], timeout_s: float) -> Any:
        manager = self._manager
        if manager is None or not self._logged_in:
            raise AmiNotConnected(self._last_error)
        try:
            return await manager.call(fields, timeout_s)
        except asyncio.TimeoutError:
            self._stats.action_timeouts += 1
            raise AmiTimeout(fields["Action"], timeout_s) from None

    # ------------------------------------------------------------------ internals: connection

    async def _connection_loop(self) -> None:
        settings = self._settings
        delay = settings.backoff_initial_s
        while not self._stopping:
            try:
                await self._connect_and_login()
            except AmiAuthenticationFailed as exc:
                self._stats.login_failures += 1
                self._last_error = "authentication failed"
                log.error("%s", exc)
            except (OSError, asyncio.TimeoutError, AmiError) as exc:
                self._last_error = f"cannot connect to {settings.host}: {exc or type(exc).__name__}"
                log.warning("AMI: %s", self._last_error)
            else:
                delay = settings.backoff_initial_s
                await self._lost.wait()
                if self._stopping:
                    return
            self._drop_session()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, settings.backoff_max_s)

    async def _connect_and_login(self) -> None:
        settings = self._settings
        self._lost.clear()
        port = settings.tls_port if settings.tls else settings.port
        manager = TheoAmiManager(
            host=settings.host,
            port=port,
            ssl=self._ssl,
            stats=self._stats,
            on_event=self._on_event,
            on_lost=self._on_lost,
        )
        self._manager = manager
        await manager.open(settings.connect_timeout_s)
        login = {
            "Action": "Login",
            "Username": settings.username,
            "Secret": self._secret,
            "Events": "on",
        }
        try:
            response = _first(await manager.call(login, settings.connect_timeout_s))
        except asyncio.TimeoutError:
            raise AmiTimeout("Login", settings.connect_timeout_s) from None
        if not _is_success(response):
            raise AmiAuthenticationFailed(settings.username, header(response, "Message"))
        self._logged_in = True
        self._logged_in_at = self._clock()
        self._last_pong_at = None
        self._pings_lost = 0
        self._last_error = ""
        self._stats.connects += 1
        self._stats.reconnects = max(0, self._stats.connects - 1)
        self._login_event.set()
        log.info("AMI: logged in to %s:%d as %s (AMI %s)", settings.host, port, settings.username, manager.ami_version)

    def _on_lost(self, exc: Exception | None) -> None:
        self._stats.connection_losses += 1
        if self._logged_in:
            self._last_error = "connection lost"
        self._logged_in = False
        self._login_event.clear()
        self._lost.set()

    def _drop_session(self) -> None:
        self._logged_in = False
        if self._login_event is not None:
            self._login_event.clear()
        if self._manager is not None:
            self._manager.close()

    def _force_reconnect(self, why: str) -> None:
        log.warning("AMI: %s; reconnecting", why)
        self._last_error = why
        self._logged_in = False
        self._login_event.clear()
        if self._manager is not None:
            self._manager.close()
        self._lost.set()

    def _on_event(self, event: Message) -> None:
        try:
            handled = self._tracker.on_event(event)
        except Exception:
            self._stats.malformed_frames += 1
            log.exception("AMI: event could not be used: %r", event)
            return
        if handled:
            self._stats.events_handled += 1
        else:
            self._stats.events_ignored += 1

    async def _ping_loop(self) -> None:
        while not self._stopping:
            await self._login_event.wait()
            try:
                await self.ping()
            except AmiError as exc:
                self._stats.ping_failures += 1
                if isinstance(exc, AmiTimeout):
                    self._pings_lost += 1
                    if self._pings_lost >= PINGS_LOST_BEFORE_RECONNECT:
                        self._force_reconnect(f"{self._pings_lost} Pings unanswered")
                        self._pings_lost = 0
            await asyncio.sleep(self._settings.ping_interval_s)


def _ssl_context(settings: AmiSettings) -> ssl.SSLContext | None:
    if not settings.tls:
        return None
    context = ssl.create_default_context(cafile=settings.tls_ca_file or None)
    return context


def _first(answer: Any) -> Message:
    return answer[0] if isinstance(answer, list) else answer


def _is_success(answer: Any) -> bool:
    return header(_first(answer), "Response") == "Success"


def _means_channel_gone(message: str) -> bool:
    text = message.lower()
    return "no such channel" in text or "does not exist" in text or "not up" in text


def _channel_info(event: Message) -> ChannelInfo:
    raw = event.get("Variable", [])
    items = raw if isinstance(raw, list) else [raw]
    variables = {}
    for item in items:
        name, sep, value = str(item).partition("=")
        if sep:
            variables[name.lstrip("_")] = value
    return ChannelInfo(
        channel=header(event, "Channel"),
        uniqueid=header(event, "Uniqueid"),
        state=header(event, "ChannelStateDesc"),
        context=header(event, "Context"),
        exten=header(event, "Exten"),
        priority=header(event, "Priority"),
        variables=variables,
    )


def _is_caller_of(info: ChannelInfo, session_id: str) -> bool:
    if info.variables.get(SESSION_VARIABLE) != session_id:
        return False
    leg = info.variables.get(LEG_VARIABLE, "")
    # THEO_LEG=caller marks the caller; without it (older dialplan) the caller is the channel
    # whose uniqueid is the session id, never the AI leg that inherited the variable.
    return leg == CALLER_LEG or (not leg and info.uniqueid == session_id)
