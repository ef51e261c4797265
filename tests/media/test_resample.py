"""Resampler (libsamplerate, streaming): quality, aliasing, steady 20 ms output, exact flush."""

from __future__ import annotations

import numpy as np
import pytest

from theo_ray.media.resample import Resampler


def tone(rate: int, freq: float, seconds: float, amp: float = 12000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * amp).astype(np.int16)


def stream(r: Resampler, x: np.ndarray, chunk: int) -> list[np.ndarray]:
    return [r.process(x[i : i + chunk]) for i in range(0, x.size, chunk)]


def tone_snr(y: np.ndarray, rate: int, freq: float) -> float:
    t = np.arange(y.size) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y.astype(np.float64), rcond=None)
    err = y - basis @ coef
    return float(10 * np.log10((y.astype(np.float64) ** 2).sum() / (err**2).sum()))


def test_passthrough_when_rates_match():
    r = Resampler(16000, 16000)
    x = tone(16000, 440, 0.02)
    assert r.passthrough and r.process(x) is x and r.flush().size == 0


def test_upsampling_is_clean_and_streams_one_frame_per_frame():
    r = Resampler(8000, 16000)
    chunks = stream(r, tone(8000, 1000, 1.0), 160)
    sizes = [c.size for c in chunks]
    # After a short start-up, every 20 ms in gives exactly 20 ms out (no block latency).
    assert sizes[:2] != [320, 320] and set(sizes[3:]) == {320}
    y = np.concatenate(chunks)[400:]
    assert tone_snr(y, 16000, 1000) > 60.0


def test_downsampling_rejects_aliases():
    r = Resampler(24000, 8000)
    passed = np.concatenate(stream(r, tone(24000, 3000, 1.0), 480))[1000:]
    r = Resampler(24000, 8000)
    aliased = np.concatenate(stream(r, tone(24000, 6000, 1.0), 480))[1000:]  # above 4 kHz Nyquist
    rms = lambda a: float(np.sqrt(np.mean(a.astype(np.float64) ** 2)))
    assert rms(passed) > 0.95 * 12000 / np.sqrt(2)
    assert 20 * np.log10(rms(passed) / max(rms(aliased), 1e-9)) > 60.0


@pytest.mark.parametrize("in_rate,out_rate", [(24000, 8000), (24000, 16000), (22050, 8000)])
def test_flush_keeps_exact_duration(in_rate, out_rate):
    r = Resampler(in_rate, out_rate)
    x = tone(in_rate, 300, 0.733)
    total = sum(c.size for c in stream(r, x, 1000)) + r.flush().size
    assert total == round(x.size * out_rate / in_rate)
    assert not r.holds_samples
    # The stream is reusable after a flush.
    assert sum(c.size for c in stream(r, x, 1000)) + r.flush().size == total
