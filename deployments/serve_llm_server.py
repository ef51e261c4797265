"""The language model on Ray Serve LLM: `LLMServer` (ray.serve.llm) runs the vLLM engine, and
the same typed `generate` / `stats` / `info` / `recent_prompts` as Theo's LanguageModel are
served on top of it, so CallActors reach it through the same DeploymentHandle
(`LanguageModel` in the `theo-llm` application) whichever engine runs where.

Ray Serve LLM brings the engine's life cycle on GPUs: the replica's placement group (one GPU
bundle per tensor-parallel rank, `accelerator_type`), vLLM's engine kwargs (prefix caching,
the hermes tool parser for its OpenAI routes), the model from a local folder or a hub id,
and its autoscaling defaults. Theo's `generate` renders the prompt with the model's chat
template, streams it from the engine's own AsyncLLM client without Serve LLM's stream
batching (no added delay per token), cuts hermes `<tool_call>` blocks out as typed tool
calls, and aborts in the engine when the caller cancels (barge-in).

Built by `theo_ray.runtime.serve_llm_app`; needs the `gpu` extra (ray[llm], vLLM CUDA).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
from ray.serve.llm.deployment import LLMServer

from theo_ray.config import LanguageModelSettings
from theo_ray.deployments.backends.vllm_engine import VllmBackend
from theo_ray.deployments.language_model import LanguageModel
from theo_ray.messages import GenerateRequest, LlmDelta, LlmEngineStats, ModelInfo

# The plain class behind the `LanguageModel` Serve deployment: its generate/stats/info run
# here on Ray Serve LLM's engine instead of one of its own.
_LanguageModelCore = LanguageModel.func_or_class


class EngineClientBackend(VllmBackend):
    """VllmBackend over an engine client already running (Ray Serve LLM's AsyncLLM): the
    same prompt rendering, token counting, streaming and abort, no engine of its own."""

    def __init__(self, settings: LanguageModelSettings, engine_client, model_source: str) -> None:
        from transformers import AutoTokenizer

        self.settings = settings
        self.model_path = model_source
        self.tokenizer = AutoTokenizer.from_pretrained(model_source)
        self.engine = engine_client

    def shutdown(self) -> None:  # the engine belongs to LLMServer
        pass


class TheoLLMServer(LLMServer):
    async def __init__(self, llm_config, *, theo_llm: LanguageModelSettings, cache_dir: str,
                       warm: GenerateRequest | None = None, **kwargs) -> None:
        await super().__init__(llm_config, **kwargs)
        # VLLMEngine keeps vLLM's AsyncLLM as `_engine_client` (ray 2.60, pinned in pyproject).
        client = self.engine._engine_client
        backend = EngineClientBackend(theo_llm, client, str(llm_config.model_loading_config.model_source))
        self._theo = _LanguageModelCore(theo_llm, cache_dir, warm, backend=backend)

    async def generate(self, req: GenerateRequest) -> AsyncIterator[LlmDelta]:
        async for delta in self._theo.generate(req):
            yield delta

    async def stats(self) -> LlmEngineStats:
        return await self._theo.stats()

    async def info(self) -> ModelInfo:
        return msgspec.structs.replace(await self._theo.info(), backend="ray-serve-llm/vllm")

    async def recent_prompts(self, prefix: str = "") -> list[tuple[str, str]]:
        return await self._theo.recent_prompts(prefix)
