"""The call plane on a running cluster: the CallSupervisor, the SipGateway and (behind
Asterisk) the AmiBridge, as named detached actors that outlive the `theo up` driver."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from theo_ray.config import TheoConfig
from theo_ray.runtime.serve_apps import ModelHandles

SUPERVISOR = "call-supervisor"
GATEWAY = "sip-gateway"
AMI_BRIDGE = "ami-bridge"


class CallPlane(msgspec.Struct):
    supervisor: object
    gateway: object
    sip_addresses: list[str]
    ami_bridge: object | None = None


def _get(name: str):
    import ray

    try:
        return ray.get_actor(name)
    except ValueError:
        return None


async def start_call_plane(
    config: TheoConfig, handles: ModelHandles | None, say: Callable[[str], None] = print
) -> CallPlane:
    """Start (or find) the supervisor, gateway and AMI bridge; returns when calls can come in."""
    from actors.call_supervisor import CallSupervisorRemote
    from actors.sip_gateway import SipGatewayActor

    bridge = None
    if config.call.use_ami:
        from actors.ami_bridge import AmiBridgeActor

        bridge = _get(AMI_BRIDGE) or AmiBridgeActor.options(name=AMI_BRIDGE, lifetime="detached").remote(
            config.asterisk
        )
        health = await bridge.start.remote()
        say(f"  AMI bridge: {health}")
    supervisor = _get(SUPERVISOR)
    if supervisor is None:
        started = time.perf_counter()
        say("starting the CallSupervisor (pre-rendering fillers, warming CallActors) ...")
        supervisor = CallSupervisorRemote.options(name=SUPERVISOR, lifetime="detached").remote(
            config.call, config.media, config.conversation, str(config.model_cache()), handles,
            config.tts.voice, GATEWAY, AMI_BRIDGE if config.call.use_ami else "",
        )
        stats = await supervisor.start.remote()
        say(f"  ready in {time.perf_counter() - started:.1f} s ({stats.warm} warm CallActors)")
    gateway = _get(GATEWAY)
    if gateway is None:
        gateway = SipGatewayActor.options(name=GATEWAY, lifetime="detached").remote(config.sip, SUPERVISOR)
    addresses = [f"{a.transport}:{a.host}:{a.port}" for a in await gateway.ready.remote()]
    say(f"  SIP gateway listening on {', '.join(addresses)}")
    return CallPlane(supervisor=supervisor, gateway=gateway, sip_addresses=addresses, ami_bridge=bridge)


async def stop_call_plane() -> None:
    import ray

    for name in (GATEWAY, SUPERVISOR, AMI_BRIDGE):
        actor = _get(name)
        if actor is None:
            continue
        try:
            if name == GATEWAY:
                await actor.stop.remote()
            elif name == SUPERVISOR:
                await actor.shutdown.remote()
        finally:
            ray.kill(actor)
