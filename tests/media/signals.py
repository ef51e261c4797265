"""Test signals shared by the media tests (deterministic, speech-like)."""

from __future__ import annotations

import numpy as np


def speech_like(rate: int, seconds: float, top_hz: float | None = None, peak: int = 12000) -> np.ndarray:
    """A voiced-speech stand-in: harmonics of a gliding 100..160 Hz pitch with 1/k
    amplitudes, a 4 Hz syllabic envelope, band-limited to `top_hz` (default 0.425 * rate)."""
    top = top_hz if top_hz is not None else 0.425 * rate
    t = np.arange(int(rate * seconds)) / rate
    f0 = 130 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = np.zeros_like(t)
    for k in range(1, 80):
        if k * 160 >= top:
            break
        x += np.sin(k * phase + k * k * 0.1) / k
    x *= 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (x / np.abs(x).max() * peak).astype(np.int16)


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    ref = reference.astype(np.float64)
    err = ref - test.astype(np.float64)
    return float(10 * np.log10((ref**2).sum() / max((err**2).sum(), 1e-12)))


def best_lag(reference: np.ndarray, test: np.ndarray, max_lag: int) -> int:
    """The lag L (0..max_lag) for which test[L:] best matches reference."""
    ref = reference.astype(np.float64)
    tst = test.astype(np.float64)
    n = min(ref.size, tst.size - max_lag)
    scores = [float(ref[:n] @ tst[lag : lag + n]) for lag in range(max_lag + 1)]
    return int(np.argmax(scores))
