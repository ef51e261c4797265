"""The overload guard's decision, with an injected CPU sampler (no psutil, no Ray)."""

from __future__ import annotations

import asyncio

import pytest

from theo_ray.conversation.call_settings import CallSettings
from theo_ray.conversation.overload_guard import OverloadGuard, OverloadSettings
from theo_ray.errors import ConfigError


class Cpu:
    def __init__(self, value: float) -> None:
        self.value = value
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.value


def _guard(cpu: float, **settings) -> tuple[OverloadGuard, Cpu]:
    sampler = Cpu(cpu)
    return OverloadGuard(OverloadSettings(**settings), sampler), sampler


def _fill(guard: OverloadGuard, n: int = 20) -> None:
    for _ in range(n):
        guard.sample()


def test_defaults_never_refuse_an_idle_node_even_at_full_cpu():
    # The CPU rule is off by default (the models share an embedded node's cores); on, it
    # still never refuses a node with no call in progress.
    assert CallSettings().overload.enabled and CallSettings().overload.cpu_percent == 0.0
    guard, _ = _guard(100.0)
    _fill(guard)
    assert guard.check(live_calls=3, warm=2) is None
    guard, _ = _guard(100.0, cpu_percent=95.0)
    _fill(guard)
    assert guard.check(live_calls=0, warm=0) is None  # nothing in progress to degrade
    assert guard.check(live_calls=3, warm=2) is not None
    guard, _ = _guard(30.0)
    _fill(guard)
    assert guard.check(live_calls=31, warm=0) is None  # under max_calls_when_pool_empty


def test_cpu_rule_uses_the_window_mean_and_counts_refusals():
    guard, cpu = _guard(99.0, cpu_percent=80.0, cpu_window_s=2.0, cpu_sample_interval_s=0.5)
    guard.sample()
    cpu.value = 20.0
    _fill(guard, 3)  # window of 4: (99 + 3 * 20) / 4 = 39.75
    assert guard.cpu_percent == pytest.approx(39.75)
    assert guard.check(live_calls=2, warm=2) is None
    cpu.value = 100.0
    _fill(guard, 4)  # the old samples left the window
    verdict = guard.check(live_calls=2, warm=2)
    assert verdict is not None and verdict.rule == "cpu" and verdict.retry_after_s == 5
    assert "100 %" in verdict.detail
    assert guard.check(live_calls=2, warm=2, cpu_known=False) is None  # a call on another node
    assert guard.refused == {"cpu": 1, "pool": 0}


def test_pool_rule_refuses_only_with_the_pool_empty_at_the_cap():
    guard, _ = _guard(10.0, max_calls_when_pool_empty=4)
    _fill(guard)
    assert guard.check(live_calls=4, warm=1) is None
    assert guard.check(live_calls=3, warm=0) is None
    verdict = guard.check(live_calls=4, warm=0)
    assert verdict is not None and verdict.rule == "pool"
    assert guard.refused == {"cpu": 0, "pool": 1}


def test_off_switches():
    guard, _ = _guard(100.0, enabled=False, max_calls_when_pool_empty=1)
    _fill(guard)
    assert guard.check(live_calls=10, warm=0) is None
    guard, _ = _guard(100.0, cpu_percent=0.0, max_calls_when_pool_empty=0)
    _fill(guard)
    assert guard.check(live_calls=10, warm=0) is None


def test_bad_samples_are_dropped_and_a_failing_sampler_does_not_raise():
    guard, cpu = _guard(float("nan"))
    guard.sample()
    assert guard.cpu_percent == 0.0

    def broken() -> float:
        raise OSError("no /proc")

    guard = OverloadGuard(OverloadSettings(), broken)
    guard.sample()
    assert guard.cpu_percent == 0.0


@pytest.mark.parametrize("key,value", [
    ("cpu_percent", 101.0), ("cpu_percent", -1.0), ("cpu_window_s", 0.1),
    ("cpu_sample_interval_s", 0.0), ("max_calls_when_pool_empty", -1), ("retry_after_s", 0),
])
def test_settings_refuse_nonsense(key, value):
    with pytest.raises(ConfigError):
        OverloadSettings(**{key: value})


async def test_sampling_task_reads_off_the_loop_at_its_interval():
    guard, cpu = _guard(97.0, cpu_percent=95.0, cpu_window_s=0.2, cpu_sample_interval_s=0.05)
    task = asyncio.create_task(guard.sample_cpu_forever())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cpu.reads >= 4  # the priming read, then one per interval
    assert guard.cpu_percent == pytest.approx(97.0)


async def test_sampling_task_is_a_no_op_with_the_cpu_rule_off():
    guard, cpu = _guard(97.0, cpu_percent=0.0)
    await asyncio.wait_for(guard.sample_cpu_forever(), 1.0)
    assert cpu.reads == 0
