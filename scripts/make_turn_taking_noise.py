"""Writes the noise bursts the turn-taking corpus plays (theo_ray/sim/scenarios/turn_taking/noise/).

Synthetic and deterministic (seeded numpy, band-limited by FFT masking), 16 kHz mono int16:
a cough (two voiced-band bursts), knocks on a door, keyboard clicks, a breath, a door slam.
Run it again to regenerate the same files: `.venv/bin/python scripts/make_turn_taking_noise.py`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

RATE = 16000
OUT = Path(__file__).resolve().parents[1] / "theo_ray" / "sim" / "scenarios" / "turn_taking" / "noise"


def band_noise(rng: np.random.Generator, seconds: float, lo_hz: float, hi_hz: float) -> np.ndarray:
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / RATE)
    spectrum[(freqs < lo_hz) | (freqs > hi_hz)] = 0.0
    out = np.fft.irfft(spectrum, n)
    return out / (np.max(np.abs(out)) + 1e-9)


def envelope(n: int, attack_s: float, decay_s: float) -> np.ndarray:
    t = np.arange(n) / RATE
    return np.minimum(1.0, t / max(attack_s, 1e-4)) * np.exp(-np.maximum(0.0, t - attack_s) / decay_s)


def place(total_s: float, pieces: list[tuple[float, np.ndarray]]) -> np.ndarray:
    out = np.zeros(int(total_s * RATE))
    for at_s, piece in pieces:
        i = int(at_s * RATE)
        out[i : i + len(piece)] += piece[: len(out) - i]
    return out


def cough(rng) -> np.ndarray:
    bursts = []
    for at, length, level in ((0.02, 0.18, 0.5), (0.26, 0.14, 0.35)):
        burst = band_noise(rng, length, 250, 3000) * envelope(int(length * RATE), 0.01, 0.05) * level
        bursts.append((at, burst))
    return place(0.45, bursts)


def knock(rng) -> np.ndarray:
    hits = []
    for k in range(3):
        n = int(0.09 * RATE)
        t = np.arange(n) / RATE
        tone = np.sin(2 * np.pi * (180 + 20 * k) * t) + 0.5 * band_noise(rng, 0.09, 500, 4000)
        hits.append((0.02 + 0.17 * k, tone * envelope(n, 0.001, 0.015) * 0.6))
    return place(0.6, hits)


def keyboard(rng) -> np.ndarray:
    clicks, at = [], 0.02
    while at < 1.05:
        n = int(0.012 * RATE)
        clicks.append((at, band_noise(rng, 0.012, 1500, 7000) * envelope(n, 0.0005, 0.003) * 0.35))
        at += float(rng.uniform(0.07, 0.16))
    return place(1.1, clicks)


def breath(rng) -> np.ndarray:
    n = int(0.55 * RATE)
    window = np.sin(np.pi * np.arange(n) / n) ** 2
    return band_noise(rng, 0.55, 200, 2500) * window * 0.06


def door(rng) -> np.ndarray:
    n = int(0.4 * RATE)
    t = np.arange(n) / RATE
    thump = (np.sin(2 * np.pi * 70 * t) + 0.6 * band_noise(rng, 0.4, 60, 1200)) * envelope(n, 0.002, 0.07)
    return place(0.45, [(0.01, thump * 0.7)])


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for seed, (name, make) in enumerate(
        (("cough", cough), ("knock", knock), ("keyboard", keyboard), ("breath", breath), ("door", door))
    ):
        pcm = make(np.random.default_rng(100 + seed))
        soundfile.write(str(OUT / f"{name}.wav"), (np.clip(pcm, -1, 1) * 32767).astype(np.int16), RATE,
                        subtype="PCM_16")
        print(f"{name}.wav: {len(pcm) / RATE:.2f} s, peak {20 * np.log10(np.max(np.abs(pcm)) + 1e-9):.1f} dBFS")


if __name__ == "__main__":
    main()
