"""The vLLM backend (the GPU cluster's engine) through the LanguageModel deployment, on
vLLM's CPU build and the packaged SmolLM2-135M: the embedded default is llama.cpp, so this
is what keeps the cluster's engine path tested here. The model is too small to judge
replies; the test checks streaming, finish reasons, min_tokens and abort."""

from __future__ import annotations

import msgspec
import pytest

from theo_ray.bench.models_bench import measure_cancel_to_abort
from theo_ray.messages import ChatMessage, GenerateRequest
from theo_ray.models.llm_assets import PACKAGED_SMOLLM2
from theo_ray.runtime.serve_apps import ModelHandles

pytestmark = pytest.mark.slow

VLLM_APP = "theo-llm-vllm"


@pytest.fixture(scope="module")
def vllm_llm(ray_cluster, theo_config):
    from ray import serve

    from theo_ray.runtime.serve_apps import build_application

    config = msgspec.structs.replace(
        theo_config, llm=msgspec.structs.replace(theo_config.llm, backend="vllm", model=PACKAGED_SMOLLM2)
    )
    serve.run(build_application("llm", config), name=VLLM_APP, route_prefix=None)
    yield serve.get_deployment_handle("LanguageModel", app_name=VLLM_APP)
    serve.delete(VLLM_APP)  # its engine holds a KV cache the rest of the session does not need


async def test_vllm_streams_a_reply_of_at_least_min_tokens(vllm_llm):
    request = GenerateRequest(
        messages=[ChatMessage(role="user", content="Diga olá.")], max_tokens=24, min_tokens=12,
        temperature=0.0, request_id="vllm-1",
    )
    deltas = [d async for d in vllm_llm.options(stream=True).generate.remote(request)]
    assert deltas[-1].finish_reason in {"stop", "length"}
    assert 12 <= deltas[-1].completion_tokens <= 24
    assert "".join(d.text for d in deltas).strip()
    info = await vllm_llm.info.remote()
    assert info.backend == "vllm"


async def test_vllm_abort_frees_the_request(vllm_llm):
    handles = ModelHandles(stt=None, llm=vllm_llm, tts=None)
    ms = await measure_cancel_to_abort(handles, "vllm-cancel")
    assert ms < 5000
    stats = await vllm_llm.stats.remote()
    assert stats.active == 0
