"""espeak-ng pt-BR voice: instant and always available, but robotic — the light fallback."""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from theo_ray.deployments.backends.espeak_phonemes import espeak_binary
from theo_ray.config import TextToSpeechSettings
from theo_ray.errors import BackendError


class EspeakBackend:
    sample_rate = 22050

    def __init__(self, settings: TextToSpeechSettings, cache_dir: Path) -> None:
        self.settings = settings
        self.binary = espeak_binary()
        self.model_path = f"{self.binary} -v pt-br"

    async def synthesize(self, sentence: str, voice: str, speed: float) -> AsyncIterator[np.ndarray]:
        words_per_minute = str(int(175 * speed))
        proc = await asyncio.create_subprocess_exec(
            self.binary, "-v", "pt-br", "-s", words_per_minute, "--stdout", "--stdin",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(sentence.encode("utf-8"))
        if proc.returncode != 0 or not out:
            raise BackendError(f"espeak-ng failed: {err.decode(errors='replace').strip()}")
        with wave.open(io.BytesIO(out)) as wav:
            if wav.getframerate() != self.sample_rate:
                raise BackendError(f"espeak-ng produced {wav.getframerate()} Hz, expected {self.sample_rate}")
            yield np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").copy()
