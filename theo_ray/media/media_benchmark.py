"""CPU cost of the media plane: N full-duplex loopback calls for a few seconds.

Each call is two RtpSessions on 127.0.0.1 that both play speech-like audio at the
TTS rate, fed in 200 ms chunks like a streaming TTS (resampled once to the codec rate) and receive each other's stream, so every
20 ms tick does the whole path both ways: resample, encode, send, receive, parse,
jitter buffer, decode, PLC, resample to 16 kHz. The figure is process CPU time per
session per tick. `theo bench media` builds on this; it is a benchmark, not a test.
"""

from __future__ import annotations

import asyncio
import time

import msgspec
import numpy as np

from theo_ray.media.rtp_session import RtpSession
from theo_ray.media.settings import MediaSettings


class MediaBenchResult(msgspec.Struct, frozen=True):
    calls: int
    codec: str
    seconds: float
    cpu_seconds: float
    cpu_us_per_session_tick: float  # one call leg's whole 20 ms of work, both directions
    cpu_percent_per_call: float  # of one core
    send_interval_error_p50_ms: float
    send_interval_error_p99_ms: float
    packets_lost: int
    frames_concealed: int


def _speech(rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    f0 = 130 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 25))
    x *= 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (x / np.abs(x).max() * 12000).astype(np.int16)


async def run_media_benchmark(
    calls: int = 4, seconds: float = 5.0, codec: str = "PCMU", model_rate: int = 24000
) -> MediaBenchResult:
    settings = MediaSettings(rtcp_interval_s=1.0)
    sessions: list[RtpSession] = []
    for _ in range(calls):
        a = RtpSession(settings, model_rate=model_rate)
        b = RtpSession(settings, model_rate=model_rate)
        await a.start(codec, remote=b.local_address)
        await b.start(codec, remote=a.local_address)
        sessions += [a, b]

    async def drain(session: RtpSession) -> None:
        async for _frame in session.frames():
            pass

    async def speak(session: RtpSession, audio: np.ndarray) -> None:
        # Like a streaming TTS: 200 ms chunks, kept ~200 ms ahead of playout.
        chunk = model_rate // 5
        for i in range(0, audio.size, chunk):
            session.enqueue(audio[i : i + chunk], "bench", last=i + chunk >= audio.size)
            await asyncio.sleep(0.2 if i else 0.0)

    readers = [asyncio.create_task(drain(s)) for s in sessions]
    audio = _speech(model_rate, seconds + 1.0)
    speakers = [asyncio.create_task(speak(s, audio)) for s in sessions]
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    stats = [s.stats() for s in sessions]
    for task in speakers:
        task.cancel()
    for s in sessions:
        await s.stop()
    await asyncio.gather(*readers, *speakers, return_exceptions=True)
    ticks = wall / (settings.ptime_ms / 1000.0)
    return MediaBenchResult(
        calls=calls,
        codec=codec,
        seconds=wall,
        cpu_seconds=cpu,
        cpu_us_per_session_tick=cpu / (len(sessions) * ticks) * 1e6,
        cpu_percent_per_call=100.0 * cpu / wall / calls,
        send_interval_error_p50_ms=float(np.median([s.send_interval_error_p50_ms for s in stats])),
        send_interval_error_p99_ms=float(max(s.send_interval_error_p99_ms for s in stats)),
        packets_lost=sum(max(0, s.lost) for s in stats),
        frames_concealed=sum(s.concealed_frames for s in stats),
    )


if __name__ == "__main__":
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    for name in sys.argv[2:] or ["PCMU", "G722"]:
        print(asyncio.run(run_media_benchmark(n, 5.0, name)))
