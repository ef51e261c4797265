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


_PLANE_ACTOR_MARKS = ("-supervisor-", "-gateway-", "-ami-bridge-")


def _plane_actors_alive() -> list[str]:
    """Call-plane actors (supervisors, gateway shards, AMI bridges, CallActors) still named in
    this test session's namespace."""
    import ray
    from ray.util import list_named_actors

    from theo_ray.actor_names import AMI_BRIDGE, CALL_ACTOR_PREFIX, GATEWAY_PREFIX, SUPERVISOR

    namespace = ray.get_runtime_context().namespace
    names = [e["name"] for e in list_named_actors(all_namespaces=True) if e["namespace"] == namespace]
    return sorted(
        n for n in names
        if n.startswith((CALL_ACTOR_PREFIX, GATEWAY_PREFIX)) or n in (SUPERVISOR, AMI_BRIDGE)
        or any(mark in n for mark in _PLANE_ACTOR_MARKS)
    )


@pytest.fixture(autouse=True, scope="module")
def no_call_plane_actor_outlives_its_module():
    """Zero zombies: once a test module is done (its planes stopped), no call-plane actor it
    started is left (a killed actor may take a few seconds to leave the name table)."""
    yield
    import ray

    if not ray.is_initialized():
        return
    import time

    deadline = time.monotonic() + 15.0
    left = _plane_actors_alive()
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = _plane_actors_alive()
    if left:
        for name in left:  # the next module must not inherit them either
            try:
                ray.kill(ray.get_actor(name), no_restart=True)
            except Exception:  # noqa: BLE001 - gone meanwhile
                pass
        pytest.fail(f"call-plane actors outlived their test module: {left}")
