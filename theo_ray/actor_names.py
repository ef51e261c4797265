"""The names of the call plane's named Ray actors: the one place they are spelt.

The production plane (`theo up`) registers its actors under these names, and everything
that finds them again by name (the SIP gateway routing to the supervisor, `theo status`,
`theo call`, `theo down`) reads them from here. It sits at the bottom of the package so the
actors and the runtime that starts them can both import it.
"""

from __future__ import annotations

SUPERVISOR = "call-supervisor"
GATEWAY_PREFIX = "sip-gateway-"  # shard k is "sip-gateway-<k>"
AMI_BRIDGE = "ami-bridge"
# CallActors are detached and named "call-actor-<supervisor>-<id>", so that they outlive a
# crashed CallSupervisor and its restart finds (adopts) them by this prefix.
CALL_ACTOR_PREFIX = "call-actor-"


def gateway_name(shard: int, prefix: str = GATEWAY_PREFIX) -> str:
    return f"{prefix}{shard}"
