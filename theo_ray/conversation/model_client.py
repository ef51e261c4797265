"""ModelClient: the CallActor's typed door to the three deployments.

Streams are Ray Serve response generators; ``cancel()`` on one propagates into the replica
(the LanguageModel then aborts the request in its engine).
"""

from __future__ import annotations

import numpy as np

from theo_ray.messages import GenerateRequest, Segment, SynthesizeRequest, TraceContext, TranscribeRequest
from theo_ray.model_handles import ModelHandles


class ModelClient:
    def __init__(self, handles: ModelHandles) -> None:
        self.handles = handles

    async def transcribe(self, audio16: np.ndarray, prompt: str = "", trace: TraceContext = TraceContext()) -> list[Segment]:
        request = TranscribeRequest(audio=audio16.astype(np.int16).tobytes(), prompt=prompt, trace=trace)
        return [s async for s in self.handles.stt.options(stream=True).transcribe.remote(request)]

    def generate(self, request: GenerateRequest):
        return self.handles.llm.options(stream=True).generate.remote(request)

    def synthesize(self, request: SynthesizeRequest):
        return self.handles.tts.options(stream=True).synthesize.remote(request)
