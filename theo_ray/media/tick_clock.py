"""The session's 20 ms clock: ticks on ABSOLUTE monotonic deadlines, stall recovery.

Tick k is due at origin + k * ptime, so no drift builds up however long the call is
(a sleep-per-tick loop would add every wake-up's lateness). One clock per call drives
both directions: one wake-up per 20 ms per call.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable


class TickClock:
    def __init__(
        self,
        ptime_ms: int,
        max_catchup_frames: int,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._ptime = ptime_ms / 1000.0
        self._max_behind = max_catchup_frames * self._ptime
        self._clock = clock
        self._sleep = sleep
        self.origin = 0.0  # clock time of tick 0 (the RTP timestamp origin's instant)

    async def run(
        self,
        running: Callable[[], bool],
        on_tick: Callable[[float, float, int], None],
        on_stall: Callable[[list[float]], None],
    ) -> None:
        """Call `on_tick(now, deadline, k)` for each tick while `running()`.

        After a stall longer than `max_catchup_frames` the clock jumps to the current tick
        and calls `on_stall(deadlines of the skipped ticks)` instead of bursting them."""
        ptime = self._ptime
        origin = self._clock()
        self.origin = origin
        k = 0
        while running():
            deadline = origin + k * ptime
            wait = deadline - self._clock()
            if wait > 0:
                await self._sleep(wait)
                if not running():
                    return
            now = self._clock()
            if now - deadline > self._max_behind:
                target = math.ceil((now - origin) / ptime)
                on_stall([origin + skipped * ptime for skipped in range(k, target)])
                k = target
                continue
            on_tick(now, deadline, k)
            k += 1
