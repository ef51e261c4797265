"""Run by test_media_placement.py in a process of its own: a two-node Ray cluster on this
machine (Ray's own `ray.cluster_utils.Cluster`: a head raylet and a second raylet, both on
127.0.0.1, token auth on), the second carrying `theo_media: 1`; an echo call plane started on
it must put its supervisor and gateway shards on the media node. Prints one JSON line."""

from __future__ import annotations

import asyncio
import json
import sys

from theo_ray.runtime.ray_auth import ensure_auth_token

ensure_auth_token()  # before ray is imported


def _node_of_named(prefix: str) -> dict[str, str]:
    from ray._private.state import actors

    return {a["Name"]: a["Address"]["NodeID"] for a in actors().values()
            if a["Name"].startswith(prefix) and a["State"] == "ALIVE"}


async def _plane_nodes(config) -> dict[str, str]:
    import msgspec

    from theo_ray.runtime.call_plane import CallPlane

    echo = msgspec.structs.replace(config.conversation, mode="echo")
    plane = CallPlane(config, None, label="placement", conversation=echo, warm_pool_size=0, shards=2)
    await plane.start()
    try:
        return _node_of_named("placement-")
    finally:
        await plane.stop()


def main() -> int:
    import ray
    from ray.cluster_utils import Cluster

    from theo_ray.config import config_from_mapping
    from theo_ray.runtime.placement import media_options

    config = config_from_mapping({})
    env = {"env_vars": {"RAY_AUTH_MODE": "token"}}
    # Both raylets on this machine, in a temp folder of this test's own (the caller checks that
    # no process naming it outlives the run).
    common = {"num_cpus": 2, "temp_dir": sys.argv[1]}
    cluster = Cluster(initialize_head=True, head_node_args={**common, "include_dashboard": False})
    try:
        ray.init(address=cluster.address, namespace="theo-placement-test", runtime_env=env, log_to_driver=False)
        before = media_options(config.call.rtp_host)  # no media node yet: nothing changes
        media = cluster.add_node(**common, resources={"theo_media": 1})
        cluster.wait_for_nodes()
        nodes = asyncio.run(_plane_nodes(config))
        print(json.dumps({
            "options_without_media_node": repr(before),
            "head_node": cluster.head_node.node_id,
            "media_node": media.node_id,
            "addresses": sorted({n["NodeManagerAddress"] for n in ray.nodes()}),
            "plane": nodes,
        }))
    finally:
        ray.shutdown()
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
