"""What each Serve deployment uses of its backend: one Protocol per kind, plus the optional
abilities a deployment looks for (`isinstance` on a runtime-checkable Protocol).

The registry (`theo_ray/backend_registry.py`) names the classes; each is built as
`Class(settings, cache_dir)` with its kind's settings Struct and the model cache folder.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from theo_ray.messages import GenerateRequest, Segment


class SpeechToTextBackend(Protocol):
    model_path: str
    model: Any  # None when no model is loaded: the deployment's health check fails

    def transcribe(
        self, audio: np.ndarray, language: str, prompt: str, word_timestamps: bool, hint: str = ""
    ) -> AsyncIterator[Segment]:
        """Float32 16 kHz mono audio -> segments as they are decoded. `prompt`: what the caller
        said before; `hint`: what the agent just asked (both decoded as text said before)."""
        ...


class LanguageModelBackend(Protocol):
    name: str  # the engine's name in ModelInfo ("llama.cpp", "vllm", "scripted")
    model_path: str

    def render_prompt(self, req: GenerateRequest) -> str: ...

    def count_tokens(self, text: str) -> int: ...

    def stream(self, req: GenerateRequest, request_id: str) -> AsyncIterator[tuple[str, str | None, int]]:
        """(text delta, finish reason or None, completion tokens so far)."""
        ...

    async def abort(self, request_id: str) -> None:
        """Stop `request_id` now and free its slot (barge-in)."""
        ...

    def unfinished(self) -> int: ...


@runtime_checkable
class WarmableBackend(Protocol):
    """An engine that keeps the last prompt's tokens: it prefills every call's prompt start
    before the replica takes calls."""

    def warm(self, req: GenerateRequest) -> str: ...


class TextToSpeechBackend(Protocol):
    sample_rate: int
    model_path: Any  # a path or a description; shown as str in ModelInfo

    def synthesize(self, sentence: str, voice: str, speed: float) -> AsyncIterator[np.ndarray]:
        """One sentence -> int16 PCM chunks at `sample_rate`."""
        ...


@runtime_checkable
class VoiceCatalogue(Protocol):
    """A TTS backend with named voices: requests naming another voice are refused."""

    voices: Mapping[str, Any]


PROTOCOLS: dict[str, type] = {
    "stt": SpeechToTextBackend,
    "llm": LanguageModelBackend,
    "tts": TextToSpeechBackend,
}
