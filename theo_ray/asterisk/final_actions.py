"""Once-per-session final actions (Redirect, Hangup): idempotency for the AmiClient.

A session ends once. A repeated call of the same action returns the first result marked
`already_done` (and waits for it if it is still running); a different final action on the
same session is refused (SessionAlreadyEnded), so a hang-up after a transfer cannot cut
off the caller talking to the human. Failed actions are not remembered: a later call
tries again. The last `remembered_sessions` outcomes are kept.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import msgspec

from theo_ray.asterisk.errors import SessionAlreadyEnded
from theo_ray.asterisk.results import ActionKind, AmiActionResult


class FinalActions:
    def __init__(self, remembered_sessions: int) -> None:
        self._remembered = remembered_sessions
        # Final actions per session: finished ones (idempotency) and the one running now.
        self._done: OrderedDict[str, tuple[ActionKind, AmiActionResult]] = OrderedDict()
        self._running: dict[str, tuple[ActionKind, asyncio.Task]] = {}

    async def run(
        self, kind: ActionKind, session_id: str, action: Callable[[], Awaitable[AmiActionResult]]
    ) -> AmiActionResult:
        """`action()` once for the session, or the outcome of the one already run."""
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
        task = asyncio.create_task(action(), name=f"ami-{kind}-{session_id}")
        self._running[session_id] = (kind, task)
        task.add_done_callback(lambda finished: self._finish(session_id, kind, finished))
        return await asyncio.shield(task)

    def _finish(self, session_id: str, kind: ActionKind, task: asyncio.Task) -> None:
        self._running.pop(session_id, None)
        if task.cancelled() or task.exception() is not None:
            return  # not remembered: a later call tries again (after Status)
        self._done[session_id] = (kind, task.result())
        while len(self._done) > self._remembered:
            self._done.popitem(last=False)
