"""Real speech for the turn tests: pt-BR synthesised with espeak-ng, resampled to 16 kHz."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr


def speak_16k(text: str, workdir: Path, speed: int = 160) -> np.ndarray:
    """float32 mono 16 kHz speech of ``text`` (espeak-ng, voice pt-br), trailing silence trimmed."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is required for the turn tests (apt-get install espeak-ng)")
    path = workdir / f"speech_{abs(hash((text, speed)))}.wav"
    subprocess.run(["espeak-ng", "-v", "pt-br", "-s", str(speed), "-w", str(path), text],
                   check=True, capture_output=True, timeout=60)
    audio, rate = soundfile.read(path, dtype="float32")
    audio = soxr.resample(audio, rate, 16000).astype(np.float32)
    voiced = np.nonzero(np.abs(audio) > 0.01)[0]
    return audio[: voiced[-1] + 1] if voiced.size else audio


@pytest.fixture
def speak(tmp_path):
    return lambda text, speed=160: speak_16k(text, tmp_path, speed)


def to_int16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
