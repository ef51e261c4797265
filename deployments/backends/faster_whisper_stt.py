"""faster-whisper (CTranslate2) speech-to-text backend: int8 on CPU, fp16 on GPU.

Decoding uses temperature 0 only: the default temperature fallback re-decodes a segment
several times when it looks unsure, which was measured at 6 s spikes on 2 cores.

The encoder runs on a window fitted to the audio (`WindowedWhisperModel`), not on the 30 s
Whisper pads everything to: see `SpeechToTextSettings.window_min_s`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from theo_ray.config import SpeechToTextSettings
from theo_ray.messages import Segment, Word
from theo_ray.models.whisper_assets import resolve_whisper_model

log = logging.getLogger(__name__)


def _window_frames(features: np.ndarray, min_frames: int, margin_frames: int) -> int:
    """Frames to encode: the content plus a margin, at least `min_frames`, at most all.

    faster-whisper pads a segment's log-mel features to 3000 frames with exact zeros, which
    real audio never produces across all 80 bins (Whisper's log-mel scale puts digital silence
    at -1.5), so the last column with a non-zero value is the content's end.
    """
    columns = np.flatnonzero(np.any(features != 0.0, axis=0))
    content = int(columns[-1]) + 1 if columns.size else 0
    return min(features.shape[-1], max(min_frames, content + margin_frames))


def windowed_whisper_model(settings: SpeechToTextSettings, model_path: str):
    """A faster-whisper model whose encoder sees the audio plus a margin, not 30 s.

    faster-whisper has no option for this (its `chunk_length` still pads to 30 s), so the one
    method that hands features to CTranslate2 is overridden; CTranslate2's Whisper encoder
    accepts any window up to 30 s. `fit_window = False` on a copy gives Whisper's own window
    with the same loaded weights.
    """
    from faster_whisper import WhisperModel

    frames_per_s = 100  # Whisper's 10 ms hop
    min_frames = int(settings.window_min_s * frames_per_s)
    margin_frames = int(settings.window_margin_s * frames_per_s)

    class WindowedWhisperModel(WhisperModel):
        fit_window = settings.window_min_s < 30.0  # 30 s is Whisper's own window: nothing to fit

        def encode(self, features: np.ndarray):
            if self.fit_window and features.ndim == 2:
                features = features[:, : _window_frames(features, min_frames, margin_frames)]
            return super().encode(features)

    return WindowedWhisperModel(
        model_path,
        device=settings.device,
        compute_type=settings.compute_type,
        cpu_threads=settings.cpu_threads,
        num_workers=settings.parallel_requests,
    )


def looks_like_a_loop(text: str, audio_s: float, max_words_per_s: float) -> bool:
    """More words than anyone says in that much audio: Whisper repeating itself ("o que é o
    que é o que é..."). Word rate, not Whisper's gzip ratio: a dictated "nove nove nove nove
    oito oito oito oito" compresses like a loop but is said at 3 words a second."""
    return len(text.split()) > max_words_per_s * audio_s + 4


class FasterWhisperBackend:
    def __init__(self, settings: SpeechToTextSettings, cache_dir: Path) -> None:
        self.settings = settings
        self.model_path = resolve_whisper_model(settings.model, cache_dir)
        self.model = windowed_whisper_model(settings, self.model_path)
        self.full_window_model = copy.copy(self.model)  # same weights, Whisper's 30 s window
        self.full_window_model.fit_window = False
        self.loops_redecoded = 0
        # Lanes (CTranslate2 workers) decoding at once; see SpeechToTextSettings.parallel_requests.
        self._pool = concurrent.futures.ThreadPoolExecutor(settings.parallel_requests, thread_name_prefix="whisper")

    def _decode(self, model, audio: np.ndarray, language: str, prompt: str, word_timestamps: bool):
        segments, _info = model.transcribe(
            audio,
            language=language or self.settings.language,
            beam_size=self.settings.beam_size,
            temperature=0.0,
            word_timestamps=word_timestamps,
            initial_prompt=prompt or None,
            condition_on_previous_text=False,
            vad_filter=False,
            # A decoding loop stops at a length no real speech of this duration reaches,
            # instead of at Whisper's 448 tokens. 200 at most: with a 223-token prompt that
            # stays inside Whisper's 448-token context.
            max_new_tokens=min(200, int(self.settings.max_tokens_per_s * len(audio) / 16000) + 16),
        )
        return list(segments)

    def transcribe_blocking(self, audio: np.ndarray, language: str, prompt: str, word_timestamps: bool) -> list:
        """The faster-whisper segments of `audio` (blocking: run it in an executor).

        Decoded on the fitted window; a transcript that looks like a decoding loop is decoded
        again on Whisper's full window (which loops far less), counted in `loops_redecoded`.
        An utterance under 30 s is one decoder pass, so collecting its segments before the
        check delays nothing; a longer one waits for all its windows (callers use the whole
        text).
        """
        segments = self._decode(self.model, audio, language, prompt, word_timestamps)
        text = " ".join(s.text for s in segments)
        if self.model.fit_window and looks_like_a_loop(text, len(audio) / 16000, self.settings.loop_words_per_s):
            self.loops_redecoded += 1
            log.warning("STT decoding loop on the fitted window (%r): decoding again on the full window", text[:80])
            segments = self._decode(self.full_window_model, audio, language, prompt, word_timestamps)
        return segments

    async def transcribe(
        self, audio: np.ndarray, language: str, prompt: str, word_timestamps: bool
    ) -> AsyncIterator[Segment]:
        loop = asyncio.get_running_loop()
        segments = await loop.run_in_executor(self._pool, self.transcribe_blocking, audio, language, prompt, word_timestamps)
        for seg in segments:
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
