"""TextToSpeech Serve deployment: text -> streamed int16 PCM chunks at the voice's rate.

Text with several sentences is synthesised sentence by sentence, so the first chunk
leaves before the rest is synthesised. Backends: Kokoro (default, CPU), espeak-ng (light
fallback), XTTS (GPU cluster). A sentence the backend fails on before its first chunk, or
any sentence while the replica's circuit breaker is open, is spoken by the fallback
backend (`tts.fallback_backend`), resampled to the backend's rate so the call's audio path
does not change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import numpy as np
from ray import serve

from theo_ray.deployments.backends.protocols import TextToSpeechBackend, VoiceCatalogue
from theo_ray.circuit_breaker import BreakerState, CircuitBreaker
from theo_ray.deployments.cpu_priority import lower_cpu_priority
from theo_ray.deployments.validation import check_synthesize
from theo_ray.backend_registry import backend_class
from theo_ray.config import TextToSpeechSettings
from theo_ray.errors import BackendError, InvalidRequest
from theo_ray.media.resample import resample_once
from theo_ray.messages import ModelInfo, SynthesizeRequest, TtsChunk
from theo_ray.telemetry.metrics import BREAKER_POSITION, TheoMetrics
from theo_ray.telemetry.tracing import deployment_span
from theo_ray.turn.spoken_form import spoken_form
from theo_ray.turn.sentence_splitter import SentenceSplitter
from theo_ray.turn.settings import SplitterSettings


log = logging.getLogger("theo.tts")


def make_tts_backend(settings: TextToSpeechSettings, cache_dir: Path) -> TextToSpeechBackend:
    return backend_class("tts", settings.backend)(settings, cache_dir)


@serve.deployment(name="TextToSpeech", ray_actor_options={"num_cpus": 0.5})
class TextToSpeech:
    def __init__(self, settings: TextToSpeechSettings, cache_dir: str) -> None:
        started = time.perf_counter()
        self.settings = settings
        lower_cpu_priority(settings.deployment.cpu_nice)
        self.backend = make_tts_backend(settings, Path(cache_dir))
        self.load_seconds = time.perf_counter() - started
        self.breaker = CircuitBreaker("tts", settings.breaker_failures, settings.breaker_open_s)
        self._cache_dir = Path(cache_dir)
        self._fallback: TextToSpeechBackend | None = None
        try:  # the breaker's position as theo_breaker_state{model="tts", plane=<app>}
            app = serve.get_replica_context().app_name
        except Exception:  # noqa: BLE001 - outside Serve (tests construct it directly)
            app = "tts"
        self._metrics = TheoMetrics({"plane": app, "model": "tts"})
        self._metrics.set("theo_breaker_state", 0)

    def _breaker_changed(self) -> None:
        self._metrics.set("theo_breaker_state", BREAKER_POSITION.get(self.breaker.state().position, 0))

    def _fallback_backend(self) -> TextToSpeechBackend | None:
        if self._fallback is None and self.settings.fallback_backend:
            fallback = msgspec.structs.replace(self.settings, backend=self.settings.fallback_backend)
            self._fallback = make_tts_backend(fallback, self._cache_dir)
        return self._fallback

    async def _sentence_audio(self, spoken: str, voice: str, speed: float) -> AsyncIterator[np.ndarray]:
        """One sentence's PCM at the backend's rate, from the backend or its fallback."""
        if self.breaker.allow():
            started = False
            try:
                async for pcm in self.backend.synthesize(spoken, voice, speed):
                    started = True
                    yield pcm
                self.breaker.record_success()
                self._breaker_changed()
                return
            except Exception as exc:
                self.breaker.record_failure()
                self._breaker_changed()
                if started or self._fallback_backend() is None:
                    raise  # half a sentence in one voice and half in another would be worse
                log.warning("tts backend %s failed (%s: %s): this sentence goes to %s",
                            self.settings.backend, type(exc).__name__, exc, self.settings.fallback_backend)
        fallback = self._fallback_backend()
        if fallback is None:
            raise BackendError(f"tts backend {self.settings.backend} is failing (breaker open) and there is no fallback")
        async for pcm in fallback.synthesize(spoken, "", speed):  # the fallback's own voice
            yield resample_once(pcm, fallback.sample_rate, self.backend.sample_rate)

    async def breaker_state(self) -> BreakerState:
        return self.breaker.state()

    async def synthesize(self, req: SynthesizeRequest) -> AsyncIterator[TtsChunk]:
        text = check_synthesize(req, self.settings.max_chars)
        if req.voice and isinstance(self.backend, VoiceCatalogue) and req.voice not in self.backend.voices:
            raise InvalidRequest("voice", f"{req.voice!r} is not one of {sorted(self.backend.voices)}")
        index = 0
        with deployment_span("tts.synthesize", req.trace, {"tts.chars": len(text)}) as span:
            started = time.perf_counter()
            # Whole sentences here: the turn loop already cuts early clauses when it wants them.
            splitter = SentenceSplitter(SplitterSettings(first_clause_min_words=0, first_piece_max_chars=0))
            sentences = splitter.feed(text) + splitter.flush()
            for sentence in sentences:
                # The chunk keeps the written sentence (what the agent said, for memory and
                # records); the voice gets its spoken form ("R$ 89,90" as words).
                spoken = spoken_form(sentence)
                async for pcm in self._sentence_audio(spoken, req.voice, req.speed or self.settings.speed):
                    if index == 0:
                        span.set_attribute("tts.first_chunk_ms", (time.perf_counter() - started) * 1000)
                    yield TtsChunk(pcm=pcm.tobytes(), sample_rate=self.backend.sample_rate, index=index, text=sentence)
                    index += 1
            yield TtsChunk(pcm=b"", sample_rate=self.backend.sample_rate, index=index, text="", final=True)

    async def info(self) -> ModelInfo:
        return ModelInfo(
            backend=self.settings.backend,
            model=str(self.backend.model_path),
            load_seconds=self.load_seconds,
            sample_rate=self.backend.sample_rate,
        )
