"""The committed Serve config (serve/gpu.yaml) is what `theo serve-config` generates from the
GPU cluster's typed config (deploy/cluster.toml), Ray Serve accepts it, and both describe
the same deployments: replicas, GPU fractions, queue bounds, autoscaling, and the LLM on Ray
Serve LLM with vLLM's prefix cache and hermes tool parser."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from theo_ray.config import config_from_mapping, load_config
from theo_ray.runtime.serve_config import serve_config, serve_config_yaml

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "deploy" / "cluster.toml"
COMMITTED = ROOT / "serve" / "gpu.yaml"


@pytest.fixture(scope="module")
def typed():
    return load_config(PROFILE, environ={})


@pytest.fixture(scope="module")
def committed():
    return yaml.safe_load(COMMITTED.read_text())


def test_committed_file_is_the_generated_one(typed, committed):
    assert committed == yaml.safe_load(serve_config_yaml(typed)), (
        "serve/gpu.yaml is stale: theo -c deploy/cluster.toml serve-config --out serve/gpu.yaml")


def test_ray_serve_accepts_the_config(committed):
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(committed)
    assert [a.name for a in schema.applications] == ["theo-stt", "theo-llm", "theo-tts"]


def _deployments(serve: dict) -> dict[str, dict]:
    return {d["name"]: d for app in serve["applications"] for d in app["deployments"]}


def test_yaml_and_typed_config_describe_the_same_deployments(typed, committed):
    deployments = _deployments(committed)
    assert set(deployments) == {"SpeechToText", "LanguageModel", "TextToSpeech"}
    # The typed config read back from each application's own args is the one in the profile.
    for app in committed["applications"]:
        rebuilt = config_from_mapping(app["args"]["theo"])
        kind = app["args"]["kind"]
        assert getattr(rebuilt, kind) == getattr(typed, kind), kind
    for name, settings in (("SpeechToText", typed.stt.deployment), ("TextToSpeech", typed.tts.deployment)):
        d = deployments[name]
        assert d["ray_actor_options"] == {"num_cpus": settings.num_cpus, "num_gpus": settings.num_gpus}
        assert d["max_ongoing_requests"] == settings.max_ongoing_requests
        assert d["autoscaling_config"] == {
            "min_replicas": settings.autoscaling.min_replicas, "max_replicas": settings.autoscaling.max_replicas,
            "target_ongoing_requests": settings.autoscaling.target_ongoing_requests}
    llm = deployments["LanguageModel"]
    assert llm["max_ongoing_requests"] == typed.llm.deployment.max_ongoing_requests
    assert llm["autoscaling_config"]["target_ongoing_requests"] == typed.llm.deployment.autoscaling.target_ongoing_requests


def test_gpu_fractions_whisper_quarter_xtts_half_llm_whole(typed, committed):
    assert (typed.stt.deployment.num_gpus, typed.tts.deployment.num_gpus, typed.llm.deployment.num_gpus) == (0.25, 0.5, 1.0)
    assert (typed.stt.device, typed.stt.compute_type) == ("cuda", "float16")
    llm_args = next(a for a in committed["applications"] if a["name"] == "theo-llm")["args"]
    # Ray Serve LLM reserves tensor_parallel_size whole GPUs for the engine.
    assert llm_args["llm_config"]["engine_kwargs"]["tensor_parallel_size"] == typed.llm.deployment.num_gpus


def test_llm_runs_on_ray_serve_llm_with_prefix_cache_and_hermes_tools(typed, committed):
    from ray.serve.llm import LLMConfig

    llm_args = next(a for a in committed["applications"] if a["name"] == "theo-llm")["args"]
    config = LLMConfig.model_validate(llm_args["llm_config"])  # Ray's own validation
    assert config.llm_engine == "vLLM"
    assert config.model_loading_config.model_source == typed.llm.model
    kwargs = config.engine_kwargs
    assert kwargs["enable_prefix_caching"] is True
    assert (kwargs["enable_auto_tool_choice"], kwargs["tool_call_parser"]) == (True, "hermes")
    assert config.experimental_configs["stream_batching_interval_ms"] == 0  # no added delay per token


def test_embedded_default_keeps_theos_own_llm_deployment():
    serve = serve_config(config_from_mapping({}))
    llm = next(a for a in serve["applications"] if a["name"] == "theo-llm")
    assert "llm_config" not in llm["args"] and llm["args"]["theo"] == {}
    assert _deployments(serve)["LanguageModel"]["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 0.0}


def test_ray_serve_llm_needs_vllm():
    from theo_ray.errors import ConfigError

    with pytest.raises(ConfigError, match="llm.server"):
        config_from_mapping({"llm": {"server": "ray_serve_llm"}})


def test_the_builder_makes_the_serve_llm_deployment_without_a_gpu(tmp_path, committed):
    """`serve deploy` calls this builder: on a machine without a GPU it still builds the
    Application (Ray Serve LLM's placement group: one GPU bundle), it just cannot start it."""
    import json

    from theo_ray.runtime.serve_config import application

    model = tmp_path / "tiny-qwen2"  # a model folder with only its config: nothing is loaded
    model.mkdir()
    (model / "config.json").write_text(json.dumps({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 64,
        "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2,
        "num_key_value_heads": 2, "vocab_size": 1000, "max_position_embeddings": 4096,
        "torch_dtype": "bfloat16"}))
    args = next(a for a in committed["applications"] if a["name"] == "theo-llm")["args"]
    args = {**args, "llm_config": {**args["llm_config"],
                                   "model_loading_config": {"model_id": "theo-llm", "model_source": str(model)},
                                   "accelerator_type": "L4"}}
    deployment = application(args)._bound_deployment
    assert deployment.name == "LanguageModel"  # what CallActors' handles ask for
    bundles = deployment._replica_config.placement_group_bundles
    assert bundles[0]["GPU"] == 1 and "accelerator_type:L4" in bundles[0]
