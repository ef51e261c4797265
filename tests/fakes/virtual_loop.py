"""A virtual-time asyncio loop for fast, deterministic tests of timing logic.

Test double (it lives under tests/ only): `loop.time()` is a virtual clock that starts at
1000.0 and jumps straight to the next timer whenever nothing is ready to run, so a 30 s
call plays in milliseconds and every `asyncio.sleep`, `call_later` and `wait_for` keeps its
order. It works through asyncio's public extension point — the selector handed to
`SelectorEventLoop` — whose `select(timeout)` advances the clock instead of waiting.
No sockets or threads may be awaited in it (nothing would ever wake it up): code under test
gets fakes for the network and the models.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class _VirtualClock:
    def __init__(self, start: float) -> None:
        self.now = start


class _VirtualSelector(selectors.BaseSelector):
    """Keeps the loop's own registrations (its self-pipe) and never waits on them."""

    def __init__(self, clock: _VirtualClock) -> None:
        self._clock = clock
        self._keys: dict[int, selectors.SelectorKey] = {}

    def register(self, fileobj, events, data=None):
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj):
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return self._keys.pop(fd)

    def select(self, timeout=None):
        if timeout is None:
            raise RuntimeError("virtual-time loop: nothing scheduled and nothing ready (a deadlock in the test)")
        self._clock.now += max(0.0, timeout)
        return []

    def get_map(self):
        return self._keys

    def close(self) -> None:
        self._keys.clear()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = 1000.0) -> None:
        self._virtual = _VirtualClock(start)
        super().__init__(selector=_VirtualSelector(self._virtual))

    def time(self) -> float:
        return self._virtual.now


def run_virtual(main: Callable[[], Awaitable[T]], limit_s: float = 600.0) -> T:
    """Run `main()` on a fresh VirtualTimeLoop; fail if it takes over `limit_s` virtual seconds."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(asyncio.wait_for(main(), limit_s))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
