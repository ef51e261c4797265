"""The call recorder: both directions on the session's clock in one stereo WAV (left caller,
right agent), written off the event loop, a failure counted and never raised, and the
retention sweep of the recordings folder."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from theo_ray.calldata.recording_retention import sweep_recordings
from theo_ray.media.call_recorder import CallRecorder, recording_path
from theo_ray.media.rtp_session import RtpSession
from theo_ray.media.settings import MediaSettings

RATE = 8000
SLOT = RATE // 50  # samples per 20 ms
PTIME = 0.02
T0 = 1000.0  # the session clock's first tick
TOLERANCE_S = 0.04


def tone(hz: float, seconds: float, rate: int = RATE, peak: int = 8000) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (peak * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def read_stereo(path: str | Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 2 and wav.getsampwidth() == 2
        rate = wav.getframerate()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    return rate, data


def loud_span(channel: np.ndarray, rate: int, threshold: float = 1000.0) -> tuple[float, float]:
    """(first, end) instants, s, of the 10 ms windows whose RMS is above `threshold`."""
    win = rate // 100
    n = channel.size // win
    rms = np.sqrt(np.mean(channel[: n * win].astype(np.float64).reshape(n, win) ** 2, axis=1))
    loud = np.flatnonzero(rms > threshold)
    assert loud.size, "no loud audio in this channel"
    return loud[0] * win / rate, (loud[-1] + 1) * win / rate


def frames_of(pcm: np.ndarray) -> list[np.ndarray]:
    return [pcm[i : i + SLOT] for i in range(0, pcm.size, SLOT)]


CLICK_SLOT = 120  # the caller's 20 ms click at 2.4 s, after a pause


async def record_scripted_call(path: Path, caller_at) -> CallRecorder:
    """3 s of session clock. The agent plays 1 kHz from 1.0 to 2.0 s; the caller says 400 Hz
    from 0.5 to 1.5 s (over the agent's start) and clicks at 2.4 s, silence otherwise, each
    frame handed out at `caller_at(k)`."""
    recorder = CallRecorder(path, RATE, 20, chunk_s=0.5, queue_chunks=8)
    agent = frames_of(tone(1000, 1.0))
    caller = frames_of(tone(400, 1.0))
    silence = np.zeros(SLOT, dtype=np.int16)
    handed: list[tuple[float, np.ndarray]] = []
    for k in range(150):
        deadline = T0 + k * PTIME
        recorder.agent(agent[k - 50] if 50 <= k < 100 else None, deadline)
        pcm = caller[k - 25] if 25 <= k < 75 else tone(2000, 0.02) if k == CLICK_SLOT else silence
        handed.append((caller_at(k), pcm))
        # The inbound path hands out what is due by this tick (arrival delivery: any time).
        while handed and handed[0][0] <= deadline + PTIME / 2:
            at, pcm = handed.pop(0)
            recorder.caller(pcm, at)
    await recorder.close()
    return recorder


async def test_a_caller_tone_and_an_agent_tone_land_in_their_channels_at_their_times(tmp_path):
    recorder = await record_scripted_call(tmp_path / "call.wav", lambda k: T0 + k * PTIME)  # clock delivery
    result = recorder.result()
    assert result.error == "" and result.duration_ms == pytest.approx(3000.0, abs=20)
    rate, data = read_stereo(result.path)
    assert rate == RATE and data.shape[0] == pytest.approx(3 * RATE, abs=SLOT)
    left, right = data[:, 0], data[:, 1]
    assert loud_span(left[: 2 * rate], rate) == pytest.approx((0.5, 1.5), abs=TOLERANCE_S)
    assert loud_span(right, rate) == pytest.approx((1.0, 2.0), abs=TOLERANCE_S)
    # While both talked (1.0-1.5 s) each channel holds its own side only: the 400 Hz caller is
    # left, the 1 kHz agent right, sample for sample.
    both = slice(int(1.0 * rate), int(1.5 * rate))
    assert np.array_equal(left[both], tone(400, 1.0)[int(0.5 * rate) : int(1.0 * rate)])
    assert np.array_equal(right[both], tone(1000, 0.5))
    # Silence where a side said nothing; the caller's click at its own slot.
    assert not left[int(1.5 * rate) : int(2.4 * rate)].any() and not right[:rate].any() and not right[2 * rate :].any()
    assert loud_span(left[2 * rate :], rate)[0] + 2.0 == pytest.approx(CLICK_SLOT * PTIME)


async def test_caller_frames_with_jitter_and_a_late_burst_keep_their_time_and_all_their_audio(tmp_path):
    rng = random.Random(7)

    def arrival(k: int) -> float:
        late = 0.045 if k in (40, 41) else rng.uniform(0.0, 0.009)  # two late packets, a burst after
        return T0 + k * PTIME + late

    recorder = await record_scripted_call(tmp_path / "jitter.wav", arrival)
    _, data = read_stereo(recorder.path)
    left = data[:, 0]
    first, _ = loud_span(left[: 2 * RATE], RATE)
    assert first == pytest.approx(0.5, abs=TOLERANCE_S)
    # Nothing the caller said is lost: every one of its 50 tone frames is in the file, the
    # ones after the burst shifted by it (~40 ms), no more.
    speech = left[: 2 * RATE].reshape(-1, SLOT)
    assert np.count_nonzero(speech.any(axis=1)) == 50
    assert loud_span(left[: 2 * RATE], RATE)[1] == pytest.approx(1.54, abs=0.021)
    # The pause that followed closed the gap: the click is back at its own slot.
    assert loud_span(left[2 * RATE :], RATE)[0] + 2.0 == pytest.approx(CLICK_SLOT * PTIME, abs=0.011)
    result = recorder.result()
    assert result.caller_frames_dropped == 0 and result.caller_silence_skipped >= 2


async def test_a_long_call_is_streamed_to_disk_with_a_few_frames_in_memory(tmp_path):
    recorder = CallRecorder(tmp_path / "long.wav", RATE, 20, chunk_s=1.0, queue_chunks=8)
    speech = tone(300, 0.02)
    peak_pending = 0
    for k in range(30_000):  # 10 minutes of clock
        recorder.agent(speech if k % 2 else None, T0 + k * PTIME)
        recorder.caller(speech, T0 + k * PTIME)
        peak_pending = max(peak_pending, len(recorder._pending))
        if k % 500 == 0:
            await asyncio.sleep(0.005)  # the writer thread gets the GIL, as between ticks of a real call
    result = await recorder.close()
    assert peak_pending <= 3
    assert result.error == "" and result.duration_ms == pytest.approx(600_000.0, abs=20)
    assert os.path.getsize(result.path) == 44 + 30_000 * SLOT * 4


async def test_a_disk_slower_than_the_call_drops_chunks_but_keeps_the_timeline(tmp_path, monkeypatch):
    from theo_ray.media import wav_chunk_writer

    disk_free = threading.Event()
    real_open = wav_chunk_writer.wave.open

    def stalled_open(*args, **kwargs):  # a disk that hangs until told to go on
        disk_free.wait(10)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(wav_chunk_writer.wave, "open", stalled_open)
    recorder = CallRecorder(tmp_path / "slow.wav", RATE, 20, chunk_s=0.2, queue_chunks=1)
    for k in range(250):  # 5 s of call while the writer is stuck
        recorder.agent(tone(1000, 0.02), T0 + k * PTIME)
    disk_free.set()
    result = await recorder.close()
    # 25 chunks: 24 while stuck (1 queued), the last at close (queued or not, a race).
    assert result.chunks_dropped in (23, 24) and result.error == ""
    assert result.duration_ms == pytest.approx(5000.0, abs=20)  # dropped chunks are silence, not gone
    _, data = read_stereo(result.path)
    assert data[:, 1].reshape(-1, SLOT).any(axis=1).sum() < 250


async def test_a_disk_that_hangs_does_not_hold_the_close_of_the_call(tmp_path, monkeypatch):
    from theo_ray.media import wav_chunk_writer

    never = threading.Event()
    real_open = wav_chunk_writer.wave.open
    monkeypatch.setattr(wav_chunk_writer.wave, "open", lambda *a, **k: (never.wait(5), real_open(*a, **k))[1])
    recorder = CallRecorder(tmp_path / "hung.wav", RATE, 20, chunk_s=0.2, queue_chunks=2, close_timeout_s=0.3)
    for k in range(100):
        recorder.agent(tone(1000, 0.02), T0 + k * PTIME)
    started = time.monotonic()
    result = await recorder.close()
    assert time.monotonic() - started < 1.5 and "TimeoutError" in result.error
    never.set()  # let the stuck thread finish


async def test_a_recording_that_cannot_be_written_is_reported_and_never_raises(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the recordings folder should be")
    recorder = CallRecorder(recording_path(blocker, "sess/1", time.time()), RATE, 20)
    for k in range(100):
        recorder.agent(tone(1000, 0.02), T0 + k * PTIME)
        recorder.caller(tone(400, 0.02), T0 + k * PTIME)
    result = await recorder.close()
    assert result.error and result.duration_ms == 0.0
    assert "sess_1" in Path(result.path).name  # the session id made safe for a file name


async def test_the_rtp_session_records_both_directions_on_its_own_clock(tmp_path):
    """Two real RtpSessions on loopback, each recording. What the caller session sent (its
    right channel) must show up in the agent's left channel at the same instant, and what
    the agent played in the caller's left, within 40 ms (loopback adds ~nothing)."""
    media = MediaSettings()
    agent = RtpSession(media, host="127.0.0.1", model_rate=RATE)
    caller = RtpSession(media, host="127.0.0.1", model_rate=RATE)
    await agent.start("PCMU", ("127.0.0.1", caller.local_address[1]), 0)
    await caller.start("PCMU", ("127.0.0.1", agent.local_address[1]), 0)
    rec_agent = CallRecorder(tmp_path / "agent.wav", RATE, media.ptime_ms)
    rec_caller = CallRecorder(tmp_path / "caller.wav", RATE, media.ptime_ms)
    agent.set_recorder(rec_agent)
    caller.set_recorder(rec_caller)

    async def drain(session):
        async for _ in session.frames():
            pass

    readers = [asyncio.create_task(drain(s)) for s in (agent, caller)]
    await asyncio.sleep(0.3)
    caller.enqueue(tone(400, 0.6), "caller", last=True)
    await asyncio.sleep(0.9)
    agent.enqueue(tone(1000, 0.6), "agent", last=True)
    await asyncio.sleep(0.9)
    for session in (agent, caller):
        await session.stop()
    await asyncio.gather(*readers, return_exceptions=True)
    for rec in (rec_agent, rec_caller):
        await rec.close()
    _, a = read_stereo(rec_agent.path)
    _, c = read_stereo(rec_caller.path)
    a_origin, c_origin = rec_agent._origin, rec_caller._origin
    # Onsets: each end conceals (PLC) a few frames after its peer stops, so ends run longer.
    sent = loud_span(c[:, 1], RATE)[0] + c_origin  # the caller's tone on the wire
    heard = loud_span(a[:, 0], RATE)[0] + a_origin  # ... as the agent received it
    assert heard == pytest.approx(sent, abs=TOLERANCE_S)
    played = loud_span(a[:, 1], RATE)[0] + a_origin
    received = loud_span(c[:, 0], RATE)[0] + c_origin
    assert received == pytest.approx(played, abs=TOLERANCE_S)
    assert played - heard == pytest.approx(0.9, abs=0.1)  # one timeline, in order
    assert a.shape[0] / RATE == pytest.approx(2.1, abs=0.15)


def test_the_retention_sweep_deletes_old_recordings_then_the_oldest_over_the_size_cap(tmp_path):
    now = time.time()
    day = 86400.0

    def recording(name: str, age_s: float, size: int) -> Path:
        path = tmp_path / name
        path.write_bytes(b"\0" * size)
        os.utime(path, (now - age_s, now - age_s))
        return path

    old = recording("20250101T000000.000_old.wav", 40 * day, 1000)
    a = recording("a.wav", 5 * day, 4000)
    b = recording("b.wav", 3 * day, 4000)
    c = recording("c.wav", 1 * day, 4000)
    live = recording("live.wav", 1.0, 4000)  # being written: never deleted for size
    other = recording("notes.txt", 400 * day, 10)  # not a recording
    result = sweep_recordings(tmp_path, retention_days=30, max_total_bytes=9000, now=now)
    assert not old.exists() and not a.exists() and not b.exists()
    assert c.exists() and live.exists() and other.exists()
    assert (result.deleted_for_age, result.deleted_for_size, result.kept, result.kept_bytes) == (1, 2, 2, 8000)
    # No size cap: only age counts; a missing folder is no error.
    assert sweep_recordings(tmp_path, retention_days=0.5, max_total_bytes=0, now=now).deleted_for_age == 1
    assert sweep_recordings(tmp_path / "none", 30, 0).kept == 0
