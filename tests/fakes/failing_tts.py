"""FailingTts: a TTS backend that fails on demand — a fault double for the TextToSpeech
deployment's fallback and circuit breaker (registered under "failing" by the tests only).

Until `failures_left` reaches 0 each sentence raises before its first chunk (or, with
`fail_mid_sentence`, after one); then it speaks a 24 kHz tone, 50 ms per character.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from theo_ray.errors import BackendError


class FailingTts:
    sample_rate = 24000
    failures_left = 0
    fail_mid_sentence = False
    calls = 0

    def __init__(self, settings, cache_dir: Path) -> None:
        self.settings = settings
        self.model_path = "failing-tts (test double)"

    async def synthesize(self, sentence: str, voice: str, speed: float) -> AsyncIterator[np.ndarray]:
        type(self).calls += 1
        n = int(len(sentence) * 0.05 * self.sample_rate)
        tone = (1000 * np.sin(2 * np.pi * 300 * np.arange(n) / self.sample_rate)).astype(np.int16)
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            if type(self).fail_mid_sentence:
                yield tone[: n // 2]
            raise BackendError("injected TTS failure")
        yield tone
