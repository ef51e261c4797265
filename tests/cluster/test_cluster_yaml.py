"""cluster.yaml and cluster.onprem.yaml pass Ray's own autoscaler validation (what `ray up`
runs before it starts anything) and say what Theo needs of a cluster."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FILES = ("cluster.yaml", "cluster.onprem.yaml")


def _prepared(name: str) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(copy.deepcopy(yaml.safe_load((ROOT / name).read_text())))
    validate_config(config)
    return config


@pytest.mark.parametrize("name", FILES)
def test_ray_validates_the_cluster_config(name):
    config = _prepared(name)
    assert config["head_node_type"] in config["available_node_types"]


def test_ray_validation_is_real():
    from ray.autoscaler._private.util import prepare_config, validate_config

    broken = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    broken["available_node_types"]["gpu-l4"]["min_wrokers"] = 1  # a typo Ray must refuse
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))


def test_aws_head_is_the_media_node_and_workers_carry_gpus():
    config = _prepared("cluster.yaml")
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("theo_media") == 1 and "GPU" not in head["resources"]
    gpu_groups = {n: t for n, t in types.items() if t["resources"].get("GPU")}
    assert set(gpu_groups) == {"gpu-l4", "gpu-a10g"}
    kinds = {t["node_config"]["InstanceType"].split(".")[0] for t in gpu_groups.values()}
    assert kinds == {"g6", "g5"}  # L4 and A10G
    for group in gpu_groups.values():
        assert 0 <= group["min_workers"] <= group["max_workers"]
    # The LLM takes a whole GPU, Whisper + XTTS share another: two GPU nodes at least.
    assert sum(g["min_workers"] for g in gpu_groups.values()) >= 2
    assert "--resources='{\"theo_media\": 1}'" in " ".join(config["head_start_ray_commands"])


@pytest.mark.parametrize("name", FILES)
def test_token_auth_everywhere_and_theo_up_on_the_head(name):
    config = _prepared(name)
    remote_token = [r for r, local in config["file_mounts"].items() if local == "~/.ray/auth_token"]
    assert remote_token and remote_token[0].endswith("/.ray/auth_token")
    starts = [c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2 and all("RAY_AUTH_MODE=token" in c for c in starts)
    assert config["head_start_ray_commands"][-1].endswith("theo -c ~/theo/deploy/cluster.toml up")


@pytest.mark.parametrize("name", FILES)
def test_nodes_install_the_gpu_extra_from_the_pinned_lock(name):
    setup = " ".join(_prepared(name)["setup_commands"])
    assert "-r ~/theo/requirements/gpu.lock" in setup and '--no-deps -e "~/theo[gpu]"' in setup
    lock = (ROOT / "requirements" / "gpu.lock").read_text().splitlines()
    pins = [line for line in lock if line and not line.startswith("#")]
    assert pins and all("==" in line for line in pins)  # every package at one version
    assert "ray==2.60.0" in pins


def test_the_cluster_profile_is_a_valid_typed_config():
    from theo_ray.config import load_config

    config = load_config(ROOT / "deploy" / "cluster.toml", environ={})
    assert config.ray.address == "auto"
    assert config.call.rtp_host == config.sip.host  # CallActors run where the gateway answers
