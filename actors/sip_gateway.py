"""SipGateway: the Ray actor at Theo's SIP edge: one pjsua instance (one per process), so a
node runs `sip.shards` of them (see theo_ray.runtime.call_plane for why).

A thin wrapper: the signalling is `theo_ray.sip.user_agent.SipUserAgent`, tested without
Ray. Calls it accepts are routed to the CallSupervisor actor (`open_call` / `update_call`
/ `close_call` with the Structs of `theo_ray.sip.messages`); the supervisor's CallActor
owns the RTP. CallActors end a call with `hangup(session_id)`.

Create it with `SipGatewayActor.options(name=name).remote(settings, supervisor, name)` and
call `ready()` once; it returns the addresses it listens on. Its own name goes into each
CallSetup, so the CallActor hangs up through the shard that holds its dialog.
"""

from __future__ import annotations

import msgspec
import ray

from theo_ray.sip.messages import CallEnded, CallSetup, ListenAddress, MediaAnswer, RemoteMedia
from theo_ray.sip.settings import SipSettings
from theo_ray.sip.stats import GatewayStats
from theo_ray.sip.user_agent import SipUserAgent

DEFAULT_SUPERVISOR = "call-supervisor"


class SupervisorRouter:
    """`CallRouter` that forwards to the CallSupervisor actor (by handle, or by name lazily)."""

    def __init__(self, supervisor: ray.actor.ActorHandle | str = DEFAULT_SUPERVISOR, gateway_name: str = "") -> None:
        self._supervisor = supervisor
        self._gateway_name = gateway_name

    def _handle(self) -> ray.actor.ActorHandle:
        if isinstance(self._supervisor, str):
            # Looked up at the first call: the supervisor may start after the gateway.
            self._supervisor = ray.get_actor(self._supervisor)
        return self._supervisor

    async def open_call(self, setup: CallSetup) -> MediaAnswer:
        if self._gateway_name:
            # The CallActor hangs up through the shard that holds the dialog.
            setup = msgspec.structs.replace(setup, gateway_name=self._gateway_name)
        return await self._handle().open_call.remote(setup)

    async def update_call(self, session_id: str, remote: RemoteMedia) -> None:
        await self._handle().update_call.remote(session_id, remote)

    async def close_call(self, ended: CallEnded) -> None:
        await self._handle().close_call.remote(ended)


class SipGateway:
    def __init__(
        self,
        settings: SipSettings,
        supervisor: ray.actor.ActorHandle | str = DEFAULT_SUPERVISOR,
        name: str = "",
    ) -> None:
        self._agent = SipUserAgent(settings, SupervisorRouter(supervisor, name))
        self._started = False

    async def ready(self) -> list[ListenAddress]:
        """Start pjsua (first call only) and return the SIP addresses it listens on."""
        if not self._started:
            await self._agent.start()
            self._started = True
        return [
            ListenAddress(transport, host, port)
            for transport, (host, port) in self._agent.addresses.items()
        ]

    async def hangup(self, session_id: str) -> bool:
        """Agent-initiated hang-up; False when the gateway has no such live call."""
        return await self._agent.hangup(session_id)

    async def stats(self) -> GatewayStats:
        return self._agent.stats()

    async def active_sessions(self) -> list[str]:
        return self._agent.active_sessions()

    async def stop(self) -> None:
        """Hang up live calls (close_call reason gateway_shutdown) and stop pjsua."""
        if self._started:
            await self._agent.stop()
            self._started = False


# A restarted gateway has lost its dialogs; the PBX's session timers (GAP 8) clear them.
SipGatewayActor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)(SipGateway)
