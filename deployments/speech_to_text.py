"""SpeechToText Serve deployment: 16 kHz int16 audio -> streamed Segments with word timings.

Stateless: each request carries all the audio it needs (the CallActor re-sends its growing
utterance buffer for partials), so any replica can serve any call.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

from ray import serve

from theo_ray.deployments.backends.protocols import SpeechToTextBackend
from theo_ray.deployments.cpu_priority import lower_cpu_priority
from theo_ray.deployments.validation import audio_from_request, float_audio_from_request
from theo_ray.backend_registry import backend_class
from theo_ray.config import SpeechToTextSettings
from theo_ray.messages import ModelInfo, Segment, TranscribeRequest
from theo_ray.telemetry.tracing import deployment_span


@serve.deployment(name="SpeechToText", ray_actor_options={"num_cpus": 0.5})
class SpeechToText:
    def __init__(self, settings: SpeechToTextSettings, cache_dir: str) -> None:
        started = time.perf_counter()
        lower_cpu_priority(settings.deployment.cpu_nice)
        self.backend_name = settings.backend
        self.backend: SpeechToTextBackend = backend_class("stt", settings.backend)(settings, Path(cache_dir))
        self.load_seconds = time.perf_counter() - started

    async def transcribe(self, req: TranscribeRequest) -> AsyncIterator[Segment]:
        audio = float_audio_from_request(audio_from_request(req))
        with deployment_span("stt.transcribe", req.trace, {"audio.seconds": len(audio) / 16000}):
            async for segment in self.backend.transcribe(audio, req.language, req.prompt, req.word_timestamps, req.hint):
                yield segment

    async def info(self) -> ModelInfo:
        return ModelInfo(backend=self.backend_name, model=self.backend.model_path, load_seconds=self.load_seconds, sample_rate=16000)

    async def check_health(self) -> None:
        if self.backend.model is None:
            raise RuntimeError("speech-to-text model not loaded")
