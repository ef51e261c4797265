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

Here: channel discovery and the two actions. The connection (login, reconnect, Ping,
health) is ``ami_connection``; the once-per-session bookkeeping is ``final_actions``;
reading AMI answers is ``ami_replies``.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable

import msgspec
from panoramisk.message import Message

from theo_ray.asterisk.ami_connection import (
    PINGS_LOST_BEFORE_RECONNECT,
    AmiConnection,
    ssl_context_for,
)
from theo_ray.asterisk.ami_replies import (
    channel_info,
    first,
    is_success,
    means_channel_gone,
)
from theo_ray.asterisk.channel_tracker import SESSION_VARIABLE, ChannelTracker, header
from theo_ray.asterisk.errors import AmiActionFailed, AmiConnectionLost, ChannelGone
from theo_ray.asterisk.final_actions import FinalActions
from theo_ray.asterisk.results import (
    ActionKind,
    AmiActionResult,
    AmiHealth,
    AmiStats,
    ChannelInfo,
)
from theo_ray.asterisk.settings import AmiSettings

log = logging.getLogger(__name__)

__all__ = ["CALLER_LEG", "LEG_VARIABLE", "PINGS_LOST_BEFORE_RECONNECT", "REDIRECT_TARGET_MS", "STATUS_VARIABLES",
           "AmiClient"]

# Marks the caller's own channel in the dialplan (not inherited by the AI leg).
LEG_VARIABLE = "THEO_LEG"
CALLER_LEG = "caller"
STATUS_VARIABLES = f"{SESSION_VARIABLE},{LEG_VARIABLE}"
REDIRECT_TARGET_MS = 500.0  # GAP 6/11: a Redirect slower than this is logged


class AmiClient:
    def __init__(
        self,
        settings: AmiSettings,
        secret: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        ssl_context: ssl.SSLContext | None = None,
        source_address: str | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._stats = AmiStats()
        self._tracker = ChannelTracker(settings.remembered_sessions)
        self._conn = AmiConnection(
            settings,
            secret,
            self._stats,
            self._on_event,
            clock,
            ssl_context if ssl_context is not None else ssl_context_for(settings),
            source_address,
        )
        self._final = FinalActions(settings.remembered_sessions)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self._conn.start()

    async def stop(self) -> None:
        await self._conn.stop()

    async def wait_logged_in(self, timeout_s: float) -> bool:
        """True once a logged-in session exists (waits at most `timeout_s`)."""
        return await self._conn.wait_logged_in(timeout_s)

    # ------------------------------------------------------------------ health and stats

    def health(self) -> AmiHealth:
        return self._conn.health()

    def stats(self) -> AmiStats:
        return msgspec.structs.replace(self._stats)

    # ------------------------------------------------------------------ actions

    async def ping(self) -> float:
        """One AMI Ping; returns the round trip in ms."""
        return await self._conn.ping()

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
        return await self._final.run(
            "redirect", session_id, lambda: self._do_redirect(session_id, context, exten, priority, target)
        )

    async def hangup(self, session_id: str, cause: int = 16) -> AmiActionResult:
        """AMI Hangup of the session's caller channel (Q.850 cause, 16 = normal clearing)."""
        return await self._final.run("hangup", session_id, lambda: self._do_hangup(session_id, cause))

    # ------------------------------------------------------------------ internals

    async def _do_redirect(
        self, session_id: str, context: str, exten: str, priority: int, target: str
    ) -> AmiActionResult:
        started = self._clock()
        for attempt in range(2):
            await self._conn.ready()
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
                response = first(await self._conn.call(fields, self._settings.action_timeout_s))
            except AmiConnectionLost:
                if attempt == 0:
                    continue
                raise
            message = header(response, "Message")
            if is_success(response):
                self._stats.redirects += 1
                result = self._result("redirect", session_id, info.channel, started, target, message)
                if result.duration_ms > REDIRECT_TARGET_MS:
                    log.warning("AMI Redirect of %s took %.0f ms", session_id, result.duration_ms)
                return result
            self._stats.action_errors += 1
            if means_channel_gone(message):
                if attempt == 0:
                    continue  # renamed between Status and Redirect: look it up again
                raise ChannelGone(session_id, message)
            raise AmiActionFailed("Redirect", message)
        raise ChannelGone(session_id, "channel vanished while redirecting")

    async def _do_hangup(self, session_id: str, cause: int) -> AmiActionResult:
        started = self._clock()
        lost_once = False
        for attempt in range(2):
            await self._conn.ready()
            try:
                info = await self.find_channel(session_id)
            except ChannelGone:
                if lost_once:
                    # Our first Hangup ran; only its answer was lost with the connection.
                    return self._result("hangup", session_id, "", started, "", "gone after reconnect")
                raise
            fields = {"Action": "Hangup", "Channel": info.channel, "Cause": str(cause)}
            try:
                response = first(await self._conn.call(fields, self._settings.action_timeout_s))
            except AmiConnectionLost:
                if attempt == 0:
                    lost_once = True
                    continue
                raise
            message = header(response, "Message")
            if is_success(response):
                self._stats.hangups += 1
                return self._result("hangup", session_id, info.channel, started, "", message)
            self._stats.action_errors += 1
            if means_channel_gone(message):
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
        answer = await self._conn.call(fields, self._settings.action_timeout_s)
        if not isinstance(answer, list):
            if is_success(answer):
                return []
            message = header(answer, "Message")
            if means_channel_gone(message):
                return []
            self._stats.action_errors += 1
            raise AmiActionFailed("Status", message)
        return [channel_info(event) for event in answer if header(event, "Event") == "Status"]

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


def _is_caller_of(info: ChannelInfo, session_id: str) -> bool:
    if info.variables.get(SESSION_VARIABLE) != session_id:
        return False
    leg = info.variables.get(LEG_VARIABLE, "")
    # THEO_LEG=caller marks the caller; without it (older dialplan) the caller is the channel
    # whose uniqueid is the session id, never the AI leg that inherited the variable.
    return leg == CALLER_LEG or (not leg and info.uniqueid == session_id)
