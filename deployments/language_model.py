"""LanguageModel Serve deployment: chat messages + tool schemas -> streamed LlmDeltas.

Tool calls written by the model in the hermes/Qwen ``<tool_call>{...}</tool_call>`` format
are cut out of the text stream as they arrive and sent as typed ``ToolCall`` deltas, so the
JSON is never spoken. When the caller cancels the stream (barge-in), the replica aborts
the request in the engine — freeing its slot — and records when, for the benchmark.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from ray import serve

from theo_ray.deployments.backends.protocols import LanguageModelBackend, WarmableBackend
from theo_ray.deployments.cpu_priority import lower_cpu_priority
from theo_ray.deployments.validation import check_generate
from theo_ray.backend_registry import backend_class
from theo_ray.config import LanguageModelSettings
from theo_ray.messages import (
    GenerateRequest,
    LlmDelta,
    LlmEngineStats,
    ModelInfo,
    ToolCall,
)
from theo_ray.telemetry.tracing import deployment_span
from theo_ray.turn.tools import MalformedToolCall, ParsedPiece, ToolCallParser

log = logging.getLogger(__name__)


def make_llm_backend(settings: LanguageModelSettings, cache_dir: Path) -> LanguageModelBackend:
    return backend_class("llm", settings.backend)(settings, cache_dir)


def _deltas(items: list[ParsedPiece]) -> list[LlmDelta]:
    # Malformed tool calls are dropped here (the parser counts them): never spoken, never run.
    return [
        LlmDelta(tool_call=i) if isinstance(i, ToolCall) else LlmDelta(text=i)
        for i in items
        if i and not isinstance(i, MalformedToolCall)
    ]


@serve.deployment(name="LanguageModel", ray_actor_options={"num_cpus": 1})
class LanguageModel:
    def __init__(
        self,
        settings: LanguageModelSettings,
        cache_dir: str,
        warm: GenerateRequest | None = None,
        backend: LanguageModelBackend | None = None,
    ) -> None:
        started = time.perf_counter()
        self.settings = settings
        lower_cpu_priority(settings.deployment.cpu_nice)  # before the engine starts its processes
        # `backend`: an engine someone else started (Ray Serve LLM's, serve_llm_server.py).
        self.backend = backend or make_llm_backend(settings, Path(cache_dir))
        # `warm`: the start of every call's prompt (persona + tools). An engine that keeps the
        # last prompt's tokens prefills it now, before the replica takes calls.
        if warm is not None and isinstance(self.backend, WarmableBackend):
            log.info("LanguageModel warm-up: %s", self.backend.warm(warm))
        self.load_seconds = time.perf_counter() - started
        self._active: set[str] = set()
        self._completed = 0
        self._aborted = 0
        self._last_abort = (0.0, 0.0, "")
        self._malformed_tool_calls = 0
        # Last rendered prompts, for debugging a call ("what did the model see?").
        self._recent_prompts: collections.deque[tuple[str, str]] = collections.deque(maxlen=32)

    async def generate(self, req: GenerateRequest) -> AsyncIterator[LlmDelta]:
        check_generate(req)
        request_id = req.request_id or uuid.uuid4().hex
        if request_id in self._active:
            request_id = f"{request_id}-{uuid.uuid4().hex[:6]}"
        parser = ToolCallParser() if self.settings.tool_call_format == "hermes" else None
        self._active.add(request_id)
        finished = False
        with deployment_span("llm.generate", req.trace, {"llm.request_id": request_id}) as span:
            started = time.perf_counter()
            prompt = self.backend.render_prompt(req)
            self._recent_prompts.append((request_id, prompt))
            prompt_tokens = self.backend.count_tokens(prompt)
            try:
                produced, reason, first_token = 0, None, True
                async for text, reason, produced in self.backend.stream(req, request_id):
                    if first_token and produced:
                        first_token = False
                        span.set_attribute("llm.first_token_ms", (time.perf_counter() - started) * 1000)
                    for delta in _deltas(parser.feed(text) if parser else [text]):
                        yield delta
                for delta in _deltas(parser.flush() if parser else []):
                    yield delta
                finished = True
                span.set_attribute("llm.completion_tokens", produced)
                yield LlmDelta(
                    finish_reason=reason or "stop", prompt_tokens=prompt_tokens, completion_tokens=produced
                )
            finally:
                if parser:
                    self._malformed_tool_calls += parser.stats.malformed
                self._active.discard(request_id)
                if finished:
                    self._completed += 1
                else:
                    # Cancelled (barge-in) or failed: free the engine slot now, not when the
                    # model would have finished. Shielded so the abort survives the cancel.
                    seen = time.time()
                    await asyncio.shield(self.backend.abort(request_id))
                    self._aborted += 1
                    self._last_abort = (seen, time.time(), request_id)
                    span.set_attribute("llm.aborted", True)

    async def stats(self) -> LlmEngineStats:
        seen, done, request_id = self._last_abort
        return LlmEngineStats(
            active=len(self._active),
            completed=self._completed,
            aborted=self._aborted,
            last_abort_seen_at=seen,
            last_abort_done_at=done,
            last_aborted_request_id=request_id,
            engine_unfinished=self.backend.unfinished(),
            malformed_tool_calls=self._malformed_tool_calls,
        )

    async def recent_prompts(self, prefix: str = "") -> list[tuple[str, str]]:
        """(request id, rendered prompt) of the last requests whose id starts with prefix."""
        return [(rid, prompt) for rid, prompt in self._recent_prompts if rid.startswith(prefix)]

    async def info(self) -> ModelInfo:
        return ModelInfo(backend=self.backend.name, model=str(self.backend.model_path), load_seconds=self.load_seconds)
