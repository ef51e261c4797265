"""KeypadListener: one call's DTMF keys, from the line's RFC 4733 events to typed keypad
inputs for the turn machine — an entry (what the caller typed) or a shortcut (a lone key
that acts: "0" → a human) — with the pause timers that end them (`KeypadBuffer`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from theo_ray.conversation.records import CallRecord
from theo_ray.turn.keypad import KeypadBuffer, KeypadInput, KeypadSettings, key_of

log = logging.getLogger("theo.turn")
TICK_S = 0.1  # how often a pending entry's pause is checked


class KeypadListener:
    def __init__(
        self,
        settings: KeypadSettings,
        events: Callable[[], AsyncIterator],  # the line's telephone events (`event`, `at`)
        clock: Callable[[], float],
        record: CallRecord,
        on_input: Callable[[KeypadInput], None],
    ) -> None:
        self.buffer = KeypadBuffer(settings)
        self._events = events
        self._clock = clock
        self._record = record
        self._on_input = on_input

    async def run(self) -> None:
        events = self._events().__aiter__()
        # One pending read kept across the pause checks: cancelling an async generator's
        # __anext__ would close the generator.
        pending: asyncio.Future | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(events.__anext__())
                done, _ = await asyncio.wait({pending}, timeout=TICK_S if self.buffer.pending else None)
                if pending in done:
                    try:
                        event = pending.result()
                    except StopAsyncIteration:
                        return
                    pending = None
                    self._record.keys_pressed += 1
                    self._deliver(self.buffer.press(key_of(event.event), self._clock()))
                else:
                    self._deliver(self.buffer.tick(self._clock()))
        finally:
            if pending is not None:
                pending.cancel()

    def _deliver(self, keypad_input: KeypadInput | None) -> None:
        if keypad_input is not None:
            log.info("%s: keypad %s", self._record.session_id, keypad_input)
            self._on_input(keypad_input)
