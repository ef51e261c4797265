"""Synthetic calls for the simulator's own tests: real speech from espeak-ng (pt-BR) placed at
exact sample positions, with comfort noise on the agent's track, written frame by frame into a
CallRecording the way the SIP side would."""

from __future__ import annotations

import functools
import shutil
import subprocess

import numpy as np
import pytest
import soundfile
import soxr
import io

from theo_ray.sim.recording import CallRecording

RATE = 16000
FRAME = RATE // 50  # 20 ms

if shutil.which("espeak-ng") is None:  # pragma: no cover - the image installs it
    pytest.skip("espeak-ng is not installed", allow_module_level=True)


@functools.lru_cache(maxsize=64)
def _speech(text: str, voice: str) -> np.ndarray:
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "165", "--stdout", text], capture_output=True, check=True, timeout=30
    ).stdout
    audio, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    audio = soxr.resample(audio, rate, RATE)
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype(np.int16)
    # Trim espeak's padding and its inaudible decay tail (down to -90 dBFS after some phrases):
    # the clip then starts and ends where the signal last reaches -45 dBFS, which is the truth
    # the measurements are checked against.
    voiced = np.flatnonzero(np.abs(pcm.astype(np.int32)) >= 32768 * 10 ** (-45 / 20))
    return pcm[voiced[0] : voiced[-1] + 1]


def speech(text: str, voice: str = "pt-br") -> np.ndarray:
    """int16 16 kHz speech that starts and ends exactly at the array's edges."""
    return _speech(text, voice)


def agent_speech(text: str) -> np.ndarray:
    return _speech(text, "pt-br+f3")


def noise(n: int, dbfs: float, seed: int = 7) -> np.ndarray:
    """White noise with an RMS of ``dbfs`` (int16 full scale = 0 dBFS)."""
    rms = 32768.0 * 10 ** (dbfs / 20.0)
    return np.random.default_rng(seed).normal(0.0, rms, n)


def ms(samples: int) -> float:
    return samples * 1000.0 / RATE


class SyntheticCall:
    """Builds a two-track call; positions in samples so the ground truth is exact."""

    def __init__(self, seconds: float, agent_noise_dbfs: float | None = -60.0) -> None:
        self.n = int(seconds * RATE)
        self.tx = np.zeros(self.n)
        self.rx = np.zeros(self.n)
        self.agent_noise_dbfs = agent_noise_dbfs
        self.rec = CallRecording(sample_rate=RATE)

    def caller(self, clip: np.ndarray, at: int, label: str | None = None, mark: str | None = None) -> int:
        """Place caller speech at sample ``at``; returns its end sample. ``label`` marks utterance
        events; ``mark`` ("barge_in"/"backchannel") marks the simulator's intent too."""
        self.tx[at : at + len(clip)] += clip
        if label is not None:
            self.rec.mark("utterance_start", at, "tx", label)
            self.rec.mark("utterance_end", at + len(clip), "tx", label)
            if mark:
                self.rec.mark(mark, at, "tx", label)  # type: ignore[arg-type]
        return at + len(clip)

    def agent(self, clip: np.ndarray, at: int, cut_at: int | None = None) -> int:
        """Place agent speech at ``at``, cut off (barge-in flush) at sample ``cut_at``; returns its end."""
        end = at + len(clip) if cut_at is None else min(cut_at, at + len(clip))
        self.rx[at:end] += clip[: end - at]
        return end

    def finish(self, hangup_at: int | None = None) -> CallRecording:
        self.rec.mark("call_answered", 0)
        rx = self.rx
        if self.agent_noise_dbfs is not None:
            rx = rx + noise(self.n, self.agent_noise_dbfs)
        tx16 = np.clip(self.tx, -32768, 32767).round().astype(np.int16)
        rx16 = np.clip(rx, -32768, 32767).round().astype(np.int16)
        # Frame by frame, as RTP would deliver them; the caller sends only while it speaks.
        for pos in range(0, self.n, FRAME):
            self.rec.write("rx", rx16[pos : pos + FRAME].tobytes(), pos)
            if np.any(tx16[pos : pos + FRAME]):
                self.rec.write("tx", tx16[pos : pos + FRAME].tobytes(), pos)
        self.rec.extend_to(self.n)
        self.rec.mark("hangup", self.n if hangup_at is None else hangup_at)
        return self.rec


def voiced_point(clip: np.ndarray, after_s: float, before_ms: int = 100, after_ms: int = 150) -> int:
    """First sample past ``after_s`` where every 10 ms frame from ``before_ms`` before to ``after_ms``
    after is loud speech (> -35 dBFS): a barge-in placed there starts while the agent is audibly
    talking, and a cut there is a real cut, not a pause that happened to be there."""
    step = RATE // 100
    n = len(clip) // step
    frames = clip[: n * step].astype(np.float64).reshape(n, step) / 32768.0
    loud = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12) > -35.0
    lo, hi = before_ms // 10, after_ms // 10
    for f in range(int(after_s * 100), n - hi):
        if loud[f - lo : f + hi].all():
            return f * step
    raise ValueError("no long enough voiced stretch in the clip")
