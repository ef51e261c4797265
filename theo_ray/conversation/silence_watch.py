"""SilenceWatch: mutual silence on a call — neither the caller nor the agent making a sound.

It only measures: every `CHECK_S` it asks whether the line is quiet (the turn machine knows:
listening, no utterance, nothing playing) and since when, and after
`conversation.silence.reprompt_after_s` of it announces the n-th silence. The turn machine
decides what is said (a reprompt, then a goodbye). Any sound restarts the count; a caller's
speech also resets the number of reprompts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from theo_ray.conversation.settings import SilenceSettings

CHECK_S = 0.25


class SilenceWatch:
    def __init__(
        self,
        settings: SilenceSettings,
        clock: Callable[[], float],
        quiet_since: Callable[[], float | None],
        on_silence: Callable[[int], None],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.quiet_since = quiet_since  # None: someone is talking or the agent is busy
        self.on_silence = on_silence
        self.silences = 0  # announced since the caller last spoke
        self._announced_for: float | None = None

    def caller_spoke(self) -> None:
        self.silences = 0

    async def run(self) -> None:
        limit = self.settings.reprompt_after_s
        if limit <= 0:
            return
        while True:
            await asyncio.sleep(CHECK_S)
            since = self.quiet_since()
            if since is None or since == self._announced_for:
                continue
            if self.clock() - since >= limit:
                self._announced_for = since  # one announcement per stretch of silence
                self.silences += 1
                self.on_silence(self.silences)
