"""Where the call plane runs on a multi-node cluster: on the media node.

SIP and RTP bind node-local addresses (`sip.host`, `call.rtp_host`) that the PBX reaches,
so the gateway shards, the CallSupervisor, the AmiBridge and every CallActor must run on
the node that has them. A node offering that is marked with the custom resource
`theo_media` (cluster.yaml: `ray start --resources='{"theo_media": 1}'` on the head).

When the cluster has that resource, the plane's actors ask for a sliver of it (so they can
only land on a media node) and are pinned to the media node whose address is `sip.host`
(the only one when there is one media node). Without it (the embedded single node, the
tests' clusters) the options are empty and nothing changes.
"""

from __future__ import annotations

from typing import Any

MEDIA_RESOURCE = "theo_media"
# Each plane actor asks for this much of the node's `theo_media: 1`: any number of shards,
# a supervisor and a bridge fit, and the request alone keeps them off GPU-only nodes.
MEDIA_SLIVER = 0.001


def media_node_id(sip_host: str) -> str | None:
    """The id of the media node the plane runs on: the one whose address is `sip_host`,
    else the only media node; None when the cluster has no media node. Several media nodes
    and none at `sip_host` is a configuration error (which one should the PBX reach?)."""
    import ray

    media = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(MEDIA_RESOURCE)]
    if not media:
        return None
    matching = [n for n in media if n.get("NodeManagerAddress") == sip_host]
    if len(matching) == 1:
        return matching[0]["NodeID"]
    if len(media) == 1:
        # One media node; sip.host is 0.0.0.0 or an address Ray does not know the node by
        # (a second interface, a NAT'd address): the plane goes to the one media node.
        return media[0]["NodeID"]
    from theo_ray.errors import TheoError

    addresses = sorted(n.get("NodeManagerAddress", "?") for n in media)
    raise TheoError(f"{len(media)} media nodes ({', '.join(addresses)}) and none at sip.host={sip_host!r}: "
                    "set sip.host (and call.rtp_host) to the address of the media node the PBX reaches")


def media_options(sip_host: str) -> dict[str, Any]:
    """Ray actor options that put a call-plane actor on the media node ({} without one)."""
    node_id = media_node_id(sip_host)
    if node_id is None:
        return {}
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {
        "resources": {MEDIA_RESOURCE: MEDIA_SLIVER},
        "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
    }
