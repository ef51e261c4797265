"""A deployment's Ray Serve options (replicas or autoscaling, CPUs/GPUs, ongoing requests)
from its typed settings: one function that `theo up`, the Serve config generator and the
Ray Serve LLM application all use."""

from __future__ import annotations

from typing import Any

from theo_ray.config import DeploymentSettings


def deployment_options(settings: DeploymentSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "max_ongoing_requests": settings.max_ongoing_requests,
        "ray_actor_options": {"num_cpus": settings.num_cpus, "num_gpus": settings.num_gpus},
    }
    if settings.autoscaling:
        options["autoscaling_config"] = {
            "min_replicas": settings.autoscaling.min_replicas,
            "max_replicas": settings.autoscaling.max_replicas,
            "target_ongoing_requests": settings.autoscaling.target_ongoing_requests,
        }
    else:
        options["num_replicas"] = settings.num_replicas
    return options
