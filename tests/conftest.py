"""Shared fixtures: one real local Ray cluster (token auth on) and the real model deployments.

The cluster lives for the whole pytest session because starting Ray and loading vLLM
costs tens of seconds on 2 cores; every test that needs Ray uses the `ray_cluster` fixture
instead of calling ray.init itself.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from theo_ray.runtime.ray_auth import ensure_auth_token

ensure_auth_token()  # before anything imports ray: Ray reads RAY_AUTH_MODE at import

SCRIPTED_LLM_APP = "theo-llm-scripted"
SCRIPTED_FALLBACK_APP = "theo-llm-scripted-fallback"
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    temp_dir = None
    if not ray.is_initialized():
        # Always a cluster of its own (address="local", own temp folder): never the user's
        # `theo up` cluster, nor one a demo left running, whatever RAY_ADDRESS says.
        temp_dir = tempfile.mkdtemp(prefix="theo-test-ray-", dir="/tmp")
        ray.init(
            address="local",
            _temp_dir=temp_dir,
            num_cpus=16,  # logical: deployments and actors reserve fractions of the 2 real cores
            include_dashboard=False,
            namespace="theo-test",
            log_to_driver=bool(os.environ.get("THEO_TEST_RAY_LOGS")),
            runtime_env={"env_vars": {"RAY_AUTH_MODE": "token"}},
        )
    yield ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()
    if temp_dir is not None:
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def theo_config(tmp_path_factory):
    from theo_ray.config import config_from_mapping

    out = tmp_path_factory.mktemp("out")
    return config_from_mapping({"paths": {"output_dir": str(out)}})


@pytest.fixture(scope="session")
def model_handles(ray_cluster, theo_config):
    """The three real deployments (faster-whisper, vLLM with the packaged model, Kokoro)."""
    from theo_ray.runtime.serve_apps import ensure_models_deployed

    return ensure_models_deployed(theo_config, say=lambda _m: None)


@pytest.fixture(scope="session")
def scripted_llm(ray_cluster, theo_config):
    """The LanguageModel deployment with the scripted TEST DOUBLE backend (see
    deployments/backends/scripted_llm.py): same deployment code, deterministic replies."""
    from theo_ray.runtime.serve_apps import deploy_scripted_model

    return deploy_scripted_model(theo_config, str(FIXTURES / "scripted_llm.toml"), SCRIPTED_LLM_APP)


@pytest.fixture(scope="session")
def scripted_fallback_llm(ray_cluster, theo_config):
    """A second scripted LanguageModel application: the `llm.fallback` model's stand-in."""
    from theo_ray.runtime.serve_apps import deploy_scripted_model

    return deploy_scripted_model(theo_config, str(FIXTURES / "scripted_llm_fallback.toml"), SCRIPTED_FALLBACK_APP)
