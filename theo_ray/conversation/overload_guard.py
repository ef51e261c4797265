"""OverloadGuard: whether one more call on this node would degrade the calls in progress.

The CallSupervisor asks it before it hands out a CallActor (`check`); a refusal goes back
to the gateway as a `MediaAnswer` with `refusal` set, which answers the INVITE 503 +
Retry-After and counts it as `rejected_overload` (the supervisor counts it by rule too).
Two rules, each only while calls are live (with none there is nothing to degrade, so an
idle node, or one busy with something else, never refuses its first call):

- the node's CPU, as a moving mean of `psutil.cpu_percent()` samples over
  `cpu_window_s`, at or above `cpu_percent`: one more call's decoders, VAD and playout
  would take their 20 ms ticks from the calls already talking;
- the warm pool empty while `max_calls_when_pool_empty` calls are live: the next call
  would start a Ray worker (~1 s of CPU) right beside them.

The CPU is sampled by `sample_cpu_forever` on the supervisor's event loop every
`cpu_sample_interval_s`; `psutil.cpu_percent(interval=None)` reads /proc/stat and returns
at once (the usage since the previous call), so nothing blocks the loop and `check` only
reads the window.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
from collections.abc import Callable

import msgspec

from theo_ray.errors import ConfigError

log = logging.getLogger("theo.supervisor")


class OverloadSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    enabled: bool = True
    # Refuse while the node's CPU, averaged over cpu_window_s, is at or above this (0 = no
    # CPU rule). Off by default: on the embedded CPU default the models share the node's
    # cores with the calls and keep them near 100 % while anyone talks, so CPU says nothing
    # about one more call there (a 3-call loadtest on 2 cores would be refused). Set it
    # (e.g. 90) on a cluster's media nodes, where only the call plane runs.
    cpu_percent: float = 0.0
    cpu_window_s: float = 5.0
    cpu_sample_interval_s: float = 0.5
    # Refuse while the warm pool is empty and this many calls are live on the node (0 = no
    # pool rule).
    max_calls_when_pool_empty: int = 32
    retry_after_s: int = 5  # Retry-After of the 503

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cpu_percent) and 0 <= self.cpu_percent <= 100):
            raise ConfigError("call.overload.cpu_percent", "must be 0..100 (0 = no CPU rule)")
        if not 0.05 <= self.cpu_sample_interval_s <= self.cpu_window_s <= 600:
            raise ConfigError("call.overload.cpu_window_s",
                              "needs 0.05 <= cpu_sample_interval_s <= cpu_window_s <= 600")
        if self.max_calls_when_pool_empty < 0:
            raise ConfigError("call.overload.max_calls_when_pool_empty", "must be >= 0 (0 = no pool rule)")
        if not 1 <= self.retry_after_s <= 3600:
            raise ConfigError("call.overload.retry_after_s", "must be 1..3600")


class OverloadVerdict(msgspec.Struct, frozen=True):
    rule: str  # "cpu" or "pool"
    detail: str
    retry_after_s: int


class OverloadGuard:
    def __init__(self, settings: OverloadSettings, sampler: Callable[[], float] | None = None) -> None:
        self.settings = settings
        self._sampler = sampler or _psutil_cpu_percent
        size = max(1, round(settings.cpu_window_s / settings.cpu_sample_interval_s))
        self._samples: collections.deque[float] = collections.deque(maxlen=size)
        self.refused: dict[str, int] = {"cpu": 0, "pool": 0}

    @property
    def cpu_percent(self) -> float:
        """The window's mean; 0.0 before the first sample."""
        return sum(self._samples) / len(self._samples) if self._samples else 0.0

    def sample(self) -> None:
        try:
            value = float(self._sampler())
        except Exception as exc:  # noqa: BLE001 - a failed reading must not stop the sampling
            log.warning("CPU sample failed: %r", exc)
            return
        if math.isfinite(value):
            self._samples.append(min(100.0, max(0.0, value)))

    def check(self, live_calls: int, warm: int, cpu_known: bool = True) -> OverloadVerdict | None:
        """None to open the call; else why not. Counts each refusal by rule. `live_calls` and
        `warm` are the node's; `cpu_known` False for a call on another node than the one
        sampled (the CPU rule then does not apply)."""
        s = self.settings
        if not s.enabled or live_calls < 1:
            return None
        verdict = None
        cpu = self.cpu_percent
        if cpu_known and s.cpu_percent and cpu >= s.cpu_percent:
            verdict = OverloadVerdict("cpu", f"node CPU {cpu:.0f} % >= {s.cpu_percent:g} % "
                                             f"with {live_calls} calls live", s.retry_after_s)
        elif s.max_calls_when_pool_empty and warm == 0 and live_calls >= s.max_calls_when_pool_empty:
            verdict = OverloadVerdict("pool", f"warm pool empty with {live_calls} calls live "
                                              f"(at most {s.max_calls_when_pool_empty})", s.retry_after_s)
        if verdict is not None:
            self.refused[verdict.rule] += 1
        return verdict

    async def sample_cpu_forever(self) -> None:
        """The sampling task (cancelled by its owner); a no-op when the CPU rule is off."""
        s = self.settings
        if not (s.enabled and s.cpu_percent):
            return
        self._sampler()  # psutil's first reading is meaningless: it only starts the interval
        while True:
            await asyncio.sleep(s.cpu_sample_interval_s)
            self.sample()


def _psutil_cpu_percent() -> float:
    import psutil

    return psutil.cpu_percent(interval=None)
