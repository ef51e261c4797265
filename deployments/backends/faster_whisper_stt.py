"""faster-whisper (CTranslate2) speech-to-text backend: int8 on CPU, fp16 on GPU.

Decoding uses temperature 0 only: the default temperature fallback re-decodes a segment
several times when it looks unsure, which was measured at 6 s spikes on 2 cores.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from theo_ray.config import SpeechToTextSettings
from theo_ray.errors import ModelUnavailable
from theo_ray.messages import Segment, Word

_END = object()


def resolve_whisper_model(spec: str, cache_dir: Path) -> str:
    if spec == "packaged:whisper-base":
        from theo_ray.models.whisper_assets import ensure_whisper_base

        return str(ensure_whisper_base(cache_dir))
    if spec.startswith("packaged:"):
        raise ModelUnavailable(f"unknown packaged STT model {spec!r}; known: packaged:whisper-base")
    return spec


class FasterWhisperBackend:
    def __init__(self, settings: SpeechToTextSettings, cache_dir: Path) -> None:
        from faster_whisper import WhisperModel

        self.settings = settings
        self.model_path = resolve_whisper_model(settings.model, cache_dir)
        self.model = WhisperModel(
            self.model_path,
            device=settings.device,
            compute_type=settings.compute_type,
            cpu_threads=settings.cpu_threads,
            num_workers=settings.parallel_requests,
        )
        # Lanes (CTranslate2 workers) decoding at once; see SpeechToTextSettings.parallel_requests.
        self._pool = concurrent.futures.ThreadPoolExecutor(settings.parallel_requests, thread_name_prefix="whisper")

    def _start(self, audio: np.ndarray, language: str, prompt: str, word_timestamps: bool):
        segments, _info = self.model.transcribe(
            audio,
            language=language or self.settings.language,
            beam_size=self.settings.beam_size,
            temperature=0.0,
            word_timestamps=word_timestamps,
            initial_prompt=prompt or None,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        return iter(segments)

    async def transcribe(
        self, audio: np.ndarray, language: str, prompt: str, word_timestamps: bool
    ) -> AsyncIterator[Segment]:
        loop = asyncio.get_running_loop()
        iterator = await loop.run_in_executor(self._pool, self._start, audio, language, prompt, word_timestamps)
        # faster-whisper decodes lazily: each next() decodes one more segment, so segments
        # stream out as they are decoded instead of after the whole audio.
        while (seg := await loop.run_in_executor(self._pool, next, iterator, _END)) is not _END:
            yield Segment(
                text=seg.text.strip(),
                start=float(seg.start),
                end=float(seg.end),
                avg_logprob=float(seg.avg_logprob),
                no_speech_prob=float(seg.no_speech_prob),
                words=[
                    Word(text=w.word.strip(), start=float(w.start), end=float(w.end), probability=float(w.probability))
                    for w in (seg.words or [])
                ],
            )
