"""CallLimits: the ways a call ends on its own, each with a goodbye rather than a cut —
the caller silent (a reprompt, then a goodbye), the call's time limit
(`conversation.max_call_seconds`), and caller media that stopped arriving
(`conversation.no_media_hangup_s`: a PBX or network that lost the call without a BYE).

It decides when; the turn machine tells it whether the line is quiet and which reply is in
flight, and stops taking turns once `closing` is set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine

from theo_ray.conversation.after_speech import AfterSpeechActions
from theo_ray.conversation.records import CallRecord
from theo_ray.conversation.reply import Reply
from theo_ray.conversation.settings import ConversationSettings
from theo_ray.conversation.silence_watch import SilenceWatch

log = logging.getLogger("theo.turn")
CLOSING_REPLY_WAIT_S = 30.0  # at the call's time limit, how long the answer in progress may still run
MEDIA_CHECK_S = 1.0


def caps_hit(end_reason: str, memory_stats, tool_stats) -> dict[str, int]:
    """The per-call caps (issue 18 item 6) this call ran into, for `CallRecord.limits_hit`;
    only those hit. `memory_stats`: turn.memory.MemoryStats; `tool_stats`: ToolRegistryStats.
    The media caps are counted in the call's MediaStats (drops.oversized, jitter_overflow_dropped)."""
    found = {
        "call_seconds": int(end_reason == "max_call_seconds"),  # conversation.max_call_seconds
        "caller_chars": memory_stats.caller_text_truncated,  # turn.memory.max_caller_chars
        "memory_token_budget": memory_stats.summaries,  # history folded into the summary
        "tool_argument_bytes": tool_stats.rejected_too_large,  # turn.tools.max_argument_bytes
    }
    return {cap: count for cap, count in found.items() if count}


class CallLimits:
    def __init__(
        self,
        session_id: str,
        settings: ConversationSettings,
        clock: Callable[[], float],
        record: CallRecord,
        actions: AfterSpeechActions,
        quiet_since: Callable[[], float | None],
        current_reply: Callable[[], Reply | None],
        expects_media: Callable[[], bool],
    ) -> None:
        self.session_id = session_id
        self.settings = settings
        self.clock = clock
        self.record = record
        self.actions = actions
        self.current_reply = current_reply
        self.expects_media = expects_media
        self.closing = False  # a goodbye is on its way: no new turn
        self.silence = SilenceWatch(settings.silence, clock, quiet_since, self._on_silence)
        self._last_packet_at = clock()
        self._tasks: list[asyncio.Task] = []

    def watchers(self) -> list[Coroutine]:
        """The coroutines to run for the call's lifetime (the turn machine owns their tasks)."""
        found: list[Coroutine] = [self.silence.run(), self._media_watch()]
        if self.settings.max_call_seconds > 0:
            found.append(self._time_limit())
        return found

    def caller_spoke(self) -> None:
        self.silence.caller_spoke()

    def packet_seen(self, at: float) -> None:
        self._last_packet_at = at

    def _close(self, key: str, reason: str, transfer: bool = False) -> Coroutine:
        self.closing = True
        log.info("%s: closing the call: %s", self.session_id, reason)
        return self.actions.close_call(key, reason, transfer=transfer)

    def _on_silence(self, count: int) -> None:
        """The n-th stretch of mutual silence since the caller last spoke: reprompt, and after
        `silence.reprompts` of them a goodbye and the hang-up (or a human)."""
        silence = self.settings.silence
        self.record.silence_prompts += 1
        if count <= silence.reprompts:
            log.info("%s: caller silent: reprompt %d", self.session_id, count)
            self.actions.say("still_there")
            return
        self._tasks.append(asyncio.create_task(self._close("goodbye", "caller_silent", silence.then == "transfer")))

    async def _time_limit(self) -> None:
        """Let the answer in progress finish (bounded), take no new turn, say why, hang up."""
        await asyncio.sleep(max(0.0, self.record.started_at + self.settings.max_call_seconds - self.clock()))
        self.closing = True
        reply = self.current_reply()
        if reply is not None and reply.task is not None:
            await asyncio.wait([reply.task], timeout=CLOSING_REPLY_WAIT_S)
        await self._close("call_time_limit", "max_call_seconds")

    async def _media_watch(self) -> None:
        """No caller packet for `no_media_hangup_s` while media is expected (not on hold):
        the call is gone on the PBX side; end ours (counted as the end reason `no_media`)."""
        limit = self.settings.no_media_hangup_s
        if limit <= 0:
            return
        while True:
            await asyncio.sleep(MEDIA_CHECK_S)
            if not self.expects_media():
                self._last_packet_at = self.clock()  # on hold: the wait starts when it ends
                continue
            if not self.closing and self.clock() - self._last_packet_at >= limit:
                log.warning("%s: no caller media for %.0f s", self.session_id, limit)
                self.closing = True
                self.record.end_reason = self.record.end_reason or "no_media"
                await self.actions.control.hangup("no_media")
                return

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
