"""Starting the HealthServer (actors/health_server.py) beside a call plane, and reading its
readiness for `theo status`."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from theo_ray.config import TheoConfig

HEALTH_SERVER = "theo-health"


def readiness_targets(config: TheoConfig, plane, deployments: dict[str, tuple[str, str]] | None = None):
    """What /ready probes for `plane` (a started CallPlane): its shards, its supervisor, its
    AMI bridge, and the model applications (default: theo-stt, theo-llm, theo-tts, and the
    fallback LLM when its handle is there)."""
    import ray

    from theo_ray.actors.health_server import ReadinessTargets
    from theo_ray.runtime.serve_apps import APPS, LLM_FALLBACK_APP

    if deployments is None:
        deployments = dict(APPS)
        if plane.handles is not None and plane.handles.llm_fallback is not None:
            deployments["llm_fallback"] = (LLM_FALLBACK_APP, "LanguageModel")
        if plane.conversation.mode == "echo":
            deployments = {}
    return ReadinessTargets(
        supervisor=plane.supervisor_name, gateways=list(plane.gateway_names), deployments=deployments,
        ami_bridge="ami-bridge" if plane.use_ami else "", namespace=ray.get_runtime_context().namespace,
    )


async def start_health_server(config: TheoConfig, targets, name: str = HEALTH_SERVER, port: int | None = None,
                              say: Callable[[str], None] = lambda _: None):
    """The named HealthServer on this driver's node (found by name when it runs already);
    returns (actor, "http://host:port")."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from theo_ray.actors.health_server import HealthServerActor

    settings = config.health if port is None else msgspec.structs.replace(config.health, port=port)
    try:
        actor = ray.get_actor(name)
    except ValueError:
        node = ray.get_runtime_context().get_node_id()
        actor = HealthServerActor.options(
            name=name, lifetime="detached" if name == HEALTH_SERVER else None,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
        ).remote(settings, targets)
    host, bound = await actor.start.remote()
    url = f"http://{host}:{bound}"
    say(f"  health: {url}/health, {url}/ready, {url}/metrics")
    return actor, url


def readiness_rows(readiness) -> list[tuple[str, str, str, str]]:
    """(check, ok, ms, detail) rows for `theo status`."""
    return [(c.name, "ok" if c.ok else "NOT READY", f"{c.ms:.0f}", c.detail) for c in readiness.checks]
