"""CircuitBreaker: stop calling a backend that keeps failing, and try it again later.

Closed: every call goes through; `failures_to_open` failures in a row open it. Open: calls
go to the fallback for `open_s`; then half-open: one call probes the backend — a success
closes the breaker, a failure opens it again (the seed's numbers: 3 failures, 30 s). The
TextToSpeech replica keeps one for its backend; the CallSupervisor keeps a `BreakerBoard`
for the language models, shared by every call on its node.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import msgspec

BreakerPosition = Literal["closed", "open", "half_open"]


class BreakerState(msgspec.Struct, frozen=True):
    """What `theo status` and the metrics show of one breaker."""

    name: str
    position: BreakerPosition
    consecutive_failures: int
    failures: int
    opened: int  # times it opened
    fallback_calls: int  # calls it sent to the fallback while open


class CircuitBreaker:
    def __init__(
        self, name: str, failures_to_open: int = 3, open_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.failures_to_open = failures_to_open
        self.open_s = open_s
        self._clock = clock
        self._position: BreakerPosition = "closed"
        self._opened_at = 0.0
        self._probing = False
        self._consecutive = 0
        self._failures = 0
        self._opened = 0
        self._fallback_calls = 0

    def allow(self) -> bool:
        """May this call use the backend? (False: use the fallback.)"""
        if self._position == "open" and self._clock() - self._opened_at >= self.open_s:
            self._position = "half_open"
            self._probing = False
        if self._position == "closed":
            return True
        if self._position == "half_open" and not self._probing:
            self._probing = True  # one probe at a time
            return True
        self._fallback_calls += 1
        return False

    def record_success(self) -> None:
        self._consecutive = 0
        self._position = "closed"
        self._probing = False

    def release(self) -> None:
        """A call ended with no verdict (cancelled by a barge-in): a half-open breaker may
        send its probe again."""
        self._probing = False

    def record_failure(self) -> None:
        self._consecutive += 1
        self._failures += 1
        if self._position == "half_open" or self._consecutive >= self.failures_to_open:
            if self._position != "open":
                self._opened += 1
            self._position = "open"
            self._opened_at = self._clock()
            self._probing = False

    def state(self) -> BreakerState:
        if self._position == "open" and self._clock() - self._opened_at >= self.open_s:
            position: BreakerPosition = "half_open"
        else:
            position = self._position
        return BreakerState(self.name, position, self._consecutive, self._failures, self._opened, self._fallback_calls)


class BreakerBoard:
    """Named breakers made on first use, all with the same numbers: the node's view of which
    models are failing (the CallSupervisor holds one for every call on its node)."""

    def __init__(self, failures_to_open: int = 3, open_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures_to_open = failures_to_open
        self.open_s = open_s
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, name: str) -> CircuitBreaker:
        if name not in self._breakers:
            self._breakers[name] = CircuitBreaker(name, self.failures_to_open, self.open_s, self._clock)
        return self._breakers[name]

    def allow(self, name: str) -> bool:
        return self.breaker(name).allow()

    def record(self, name: str, ok: bool | None) -> None:
        """A call's outcome: True a success, False a failure, None no verdict (cancelled)."""
        if ok is None:
            self.breaker(name).release()
        elif ok:
            self.breaker(name).record_success()
        else:
            self.breaker(name).record_failure()

    def states(self) -> list[BreakerState]:
        return [b.state() for b in self._breakers.values()]
