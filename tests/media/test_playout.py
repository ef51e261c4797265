"""PlayoutQueue: framing, marks, flush, pause/resume, events, drained (GAP 6)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from theo_ray.media.playout import PlayoutQueue

N = 160


def ramp(n: int, start: int = 1) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.int16)


def test_frames_marks_and_talkspurt_marker():
    q = PlayoutQueue(8000, N)
    events = []
    q.add_listener(events.append)
    q.enqueue(ramp(250), "a")
    q.enqueue(ramp(150, 1000), "b")
    f1 = q.pull(1.0)
    f2 = q.pull(1.02)
    f3 = q.pull(1.04)
    assert f1.talkspurt_start and not f2.talkspurt_start
    assert f1.marks == [("a", 160)] and f2.marks == [("a", 90), ("b", 70)] and f3.marks == [("b", 80)]
    assert np.array_equal(np.concatenate([f1.pcm, f2.pcm])[:250], ramp(250))
    assert f3.pcm.size == N and not f3.pcm[80:].any()  # padded with silence at the end
    assert q.pull(1.06) is None  # nothing to play: nothing is sent
    a, b = q.progress("a"), q.progress("b")
    assert a.complete and b.complete and a.first_sent_at == 1.0 and b.first_sent_at == 1.02
    kinds = [(e.kind, e.mark) for e in events]
    assert kinds == [("mark_started", "a"), ("mark_done", "a"), ("mark_started", "b"),
                     ("mark_done", "b"), ("idle", "")]
    q.enqueue(ramp(N), "c")
    assert q.pull(2.0).talkspurt_start  # a new talkspurt after a gap


def test_flush_stops_at_once_and_reports_what_was_heard():
    q = PlayoutQueue(8000, N)
    q.enqueue(ramp(800), "s1")
    q.enqueue(ramp(800), "s2")
    q.pull(0.0)
    q.pull(0.02)
    result = q.flush()
    assert q.pull(0.04) is None
    assert result.dropped_samples == 1600 - 320
    by_mark = {p.mark: p for p in result.progress}
    assert by_mark["s1"].sent_samples == 320 and by_mark["s1"].dropped_samples == 480
    assert by_mark["s2"].sent_samples == 0 and by_mark["s2"].dropped_samples == 800
    assert q.progress("s1").sent_fraction == pytest.approx(320 / 800)


def test_pause_fades_out_and_resume_continues_at_the_same_sample():
    q = PlayoutQueue(8000, N)
    x = np.full(N * 4, 10000, dtype=np.int16)
    x[N:] = ramp(N * 3, 5000)
    q.enqueue(x, "m")
    q.pull(0.0)
    q.pause()
    faded = q.pull(0.02)
    assert faded is not None and faded.pcm[0] == x[N] and abs(int(faded.pcm[-1])) < 100
    assert q.pull(0.04) is None and q.pull(0.06) is None  # paused: nothing sent
    assert q.progress("m").sent_samples == N  # the faded frame does not count as heard
    q.resume()
    back = q.pull(0.08)
    assert back.talkspurt_start
    # Same samples as where the fade began, faded in over the frame.
    ramp_in = np.linspace(0.0, 1.0, N, dtype=np.float32)
    assert np.array_equal(back.pcm, (x[N : 2 * N] * ramp_in).astype(np.int16))
    assert np.array_equal(q.pull(0.1).pcm, x[2 * N : 3 * N])


class ManualClock:
    """Test double for time: the test advances it explicitly."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_drained_waits_for_last_frame_plus_delay():
    clock = ManualClock()
    slept = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds
        await asyncio.sleep(0)

    q = PlayoutQueue(8000, N, playout_delay_ms=60, clock=clock, sleep=fake_sleep)
    q.enqueue(ramp(N * 3), "bye")
    waiter = asyncio.create_task(q.drained())
    for k in range(3):
        await asyncio.sleep(0)
        assert not waiter.done()
        clock.now = 1.0 + k * 0.02
        q.pull(clock.now)
    heard_at = await waiter
    assert heard_at == pytest.approx(1.04 + 0.06)
    assert clock.now >= heard_at - 1e-9
    assert slept and slept[-1] == pytest.approx(0.06)


async def test_drained_extends_when_more_audio_arrives_and_ends_on_flush():
    clock = ManualClock()
    q = PlayoutQueue(8000, N, playout_delay_ms=40, clock=clock)
    assert await q.drained() == clock.now  # nothing ever queued: already drained
    q.enqueue(ramp(N), "a")
    waiter = asyncio.create_task(q.drained())
    await asyncio.sleep(0)
    q.pull(0.0)
    q.enqueue(ramp(N), "b")  # more arrives while waiting out the delay
    await asyncio.sleep(0.01)
    assert not waiter.done()
    q.flush()
    clock.now = 10.0
    assert await asyncio.wait_for(waiter, 1.0) == pytest.approx(0.04)
