"""The `theo-llm` application on Ray Serve LLM (`llm.server = "ray_serve_llm"`): Theo's typed
LLM settings -> Ray's `LLMConfig` -> an `LLMServer` deployment named `LanguageModel`.

`llm_config_mapping` is what `theo serve-config` writes under the application's `args`
(so the operator sees and may edit the engine's kwargs); `serve_llm_application` builds the
Application from it, validated by Ray's own `LLMConfig`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from theo_ray.config import LanguageModelSettings
from theo_ray.messages import GenerateRequest

LLM_MODEL_ID = "theo-llm"  # the model's name in Ray Serve LLM (and on its OpenAI routes)
DEPLOYMENT_NAME = "LanguageModel"  # the name CallActors' handles use, whoever serves it


def model_source(llm: LanguageModelSettings, cache_dir: Path) -> str:
    """A local folder or a hub id. `pulled:NAME` is the folder `theo models pull` fills on
    every node (same home, same cache path); a hub id is downloaded by vLLM on an online
    cluster; packaged GGUFs are llama.cpp's, not vLLM's."""
    from theo_ray.models.llm_assets import pulled_model_dir

    spec = llm.model
    if spec.startswith("pulled:"):
        return str(pulled_model_dir(cache_dir, spec.removeprefix("pulled:")))
    if spec.startswith("packaged:"):
        raise ValueError(f"llm.model = {spec!r} is not served by vLLM on GPUs: name a folder, a hub id or pulled:NAME")
    return spec


def llm_config_mapping(llm: LanguageModelSettings, cache_dir: Path) -> dict[str, Any]:
    """Ray Serve LLM's LLMConfig (as plain data) for Theo's LLM settings."""
    from theo_ray.runtime.deployment_options import deployment_options

    engine_kwargs: dict[str, Any] = {
        "max_model_len": llm.max_model_len,
        "dtype": llm.dtype,
        "gpu_memory_utilization": llm.gpu_memory_utilization,
        "tensor_parallel_size": llm.tensor_parallel_size,
        # Every call's prompt starts with the same persona and tool schemas: their KV blocks
        # are computed once per replica and reused by every call and turn.
        "enable_prefix_caching": llm.enable_prefix_caching,
    }
    if llm.tool_call_format == "hermes":
        # Qwen's <tool_call>{...}</tool_call> format: parsed by vLLM on the OpenAI routes, by
        # Theo's ToolCallParser in `generate` (the same format, cut out as it streams).
        engine_kwargs |= {"enable_auto_tool_choice": True, "tool_call_parser": "hermes"}
    options = deployment_options(llm.deployment)
    deployment: dict[str, Any] = {"max_ongoing_requests": options["max_ongoing_requests"]}
    for key in ("autoscaling_config", "num_replicas"):
        if key in options:
            deployment[key] = options[key]
    # The replica process itself needs CPU only: the engine's workers take the GPU bundles.
    deployment["ray_actor_options"] = {"num_cpus": llm.deployment.num_cpus}
    mapping: dict[str, Any] = {
        "model_loading_config": {"model_id": LLM_MODEL_ID, "model_source": model_source(llm, cache_dir)},
        "engine_kwargs": engine_kwargs,
        "deployment_config": deployment,
        # Serve LLM batches streamed chunks every N ms by default; a phone call wants each
        # token as soon as it exists (Theo's generate reads the engine directly anyway).
        "experimental_configs": {"stream_batching_interval_ms": 0},
    }
    if llm.accelerator_type:
        mapping["accelerator_type"] = llm.accelerator_type
    return mapping


def serve_llm_application(
    llm: LanguageModelSettings, cache_dir: str, warm: GenerateRequest | None, llm_config: dict[str, Any] | None = None
):
    """The LLMServer Application (TheoLLMServer: Theo's `generate` on Serve LLM's engine)."""
    from ray.serve.llm import LLMConfig, build_llm_deployment

    from theo_ray.deployments.serve_llm_server import TheoLLMServer

    config = LLMConfig.model_validate(llm_config or llm_config_mapping(llm, Path(cache_dir)))
    return build_llm_deployment(
        config,
        deployment_cls=TheoLLMServer,
        bind_kwargs={"theo_llm": llm, "cache_dir": cache_dir, "warm": warm},
        override_serve_options={"name": DEPLOYMENT_NAME},
    )
