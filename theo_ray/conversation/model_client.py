"""ModelClient: the CallActor's typed door to the model deployments, and the node's
circuit breakers on them.

Streams are Ray Serve response generators; ``cancel()`` on one propagates into the replica
(the LanguageModel then aborts the request in its engine).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from theo_ray.circuit_breaker import BreakerBoard
from theo_ray.messages import GenerateRequest, Segment, SynthesizeRequest, TraceContext, TranscribeRequest
from theo_ray.model_handles import ModelHandles

PRIMARY_LLM, FALLBACK_LLM = "llm", "llm_fallback"


class Breakers(Protocol):
    """Which models may be tried (a breaker per model, shared by the calls of a node)."""

    async def allow(self, model: str) -> bool: ...

    def record(self, model: str, ok: bool | None) -> None:
        """True a success, False a failure, None no verdict (the reply was cancelled)."""


class LocalBreakers:
    """Breakers of this process only: the fast tests, and a call whose supervisor is gone."""

    def __init__(self, board: BreakerBoard | None = None) -> None:
        self.board = board or BreakerBoard()

    async def allow(self, model: str) -> bool:
        return self.board.allow(model)

    def record(self, model: str, ok: bool | None) -> None:
        self.board.record(model, ok)


class ModelClient:
    def __init__(self, handles: ModelHandles, breakers: Breakers | None = None) -> None:
        self.handles = handles
        self.breakers = breakers or LocalBreakers()

    def language_models(self) -> list[str]:
        """The LLMs a reply may use, in order: the primary, then the fallback if one runs."""
        return [PRIMARY_LLM, FALLBACK_LLM] if self.handles.llm_fallback is not None else [PRIMARY_LLM]

    async def transcribe(
        self, audio16: np.ndarray, prompt: str = "", trace: TraceContext = TraceContext(), hint: str = ""
    ) -> list[Segment]:
        request = TranscribeRequest(audio=audio16.astype(np.int16).tobytes(), prompt=prompt, hint=hint, trace=trace)
        return [s async for s in self.handles.stt.options(stream=True).transcribe.remote(request)]

    def generate(self, request: GenerateRequest, model: str = PRIMARY_LLM):
        handle = self.handles.llm_fallback if model == FALLBACK_LLM else self.handles.llm
        return handle.options(stream=True).generate.remote(request)

    def synthesize(self, request: SynthesizeRequest):
        return self.handles.tts.options(stream=True).synthesize.remote(request)
