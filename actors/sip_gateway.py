"""SipGateway: the Ray actor at Theo's SIP edge, one per shard (`sip.shards` per node; see
theo_ray.runtime.call_plane for why).

The actor hosts no SIP code itself: its pjsua runs in a child process
(`theo_ray.sip.shard_process.ShardProcess`) that the actor replaces within milliseconds
if a datagram crashes it, from a standby that has already loaded pjsua2. The actor starts
listening in its constructor, so a Ray restart of the actor (its own process died) listens
again without anyone calling `ready()`.

Calls the shard accepts are routed to the CallSupervisor actor (`open_call` /
`update_call` / `close_call` with the Structs of `theo_ray.sip.messages`); the supervisor's
CallActor owns the RTP. CallActors end a call with `hangup(session_id)`.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
import ray

from theo_ray.actor_names import SUPERVISOR
from theo_ray.actors.gateway_telemetry import DialogSpans, ShardMetrics
from theo_ray.sip.messages import CallEnded, CallSetup, ListenAddress, MediaAnswer, RemoteMedia
from theo_ray.sip.settings import SipSettings
from theo_ray.sip.shard_process import ShardProcess, ShardStatus
from theo_ray.sip.stats import GatewayStats
from theo_ray.telemetry.settings import TelemetrySettings

log = logging.getLogger("theo.sip.gateway")


class SupervisorRouter:
    """`CallRouter` that forwards to the CallSupervisor actor (by handle, or by name lazily)."""

    def __init__(self, supervisor: ray.actor.ActorHandle | str = SUPERVISOR, gateway_name: str = "",
                 spans: DialogSpans | None = None) -> None:
        self._supervisor = supervisor
        self._gateway_name = gateway_name
        self._spans = spans
        self._node_id = ray.get_runtime_context().get_node_id()  # where this shard's calls run

    def _handle(self) -> ray.actor.ActorHandle:
        if isinstance(self._supervisor, str):
            # Looked up at the first call: the supervisor may start after the gateway.
            self._supervisor = ray.get_actor(self._supervisor)
        return self._supervisor

    async def open_call(self, setup: CallSetup) -> MediaAnswer:
        # The CallActor hangs up through the shard that holds the dialog, and runs on its
        # node (where this shard's SIP and RTP addresses are).
        setup = msgspec.structs.replace(setup, gateway_name=self._gateway_name or setup.gateway_name,
                                        gateway_node_id=self._node_id)
        if self._spans is None:
            return await self._handle().open_call.remote(setup)
        span = self._spans.invite(setup)  # the call's trace starts at the INVITE
        setup = msgspec.structs.replace(setup, trace=self._spans.context(span))
        try:
            answer = await self._handle().open_call.remote(setup)
        except BaseException as exc:
            self._spans.answered(setup, span, exc)
            raise
        self._spans.answered(setup, span)
        return answer

    async def update_call(self, session_id: str, remote: RemoteMedia) -> None:
        await self._handle().update_call.remote(session_id, remote)

    async def close_call(self, ended: CallEnded) -> None:
        if self._spans is not None:
            self._spans.ended(ended)
        await self._handle().close_call.remote(ended)


class SipGateway:
    def __init__(
        self,
        settings: SipSettings,
        supervisor: ray.actor.ActorHandle | str = SUPERVISOR,
        name: str = "",
        telemetry: TelemetrySettings | None = None,
    ) -> None:
        telemetry = telemetry or TelemetrySettings()
        self._spans = DialogSpans(name)
        self._shard = ShardProcess(settings, name, SupervisorRouter(supervisor, name, self._spans))
        # Async actors run __init__ on their event loop: listen now, also after a restart.
        self._started = asyncio.get_running_loop().create_task(self._shard.start())
        self._metrics = ShardMetrics(name, enabled=telemetry.records_metrics)
        self._metrics_task = (asyncio.get_running_loop().create_task(
            self._metrics.run(self.stats, telemetry.metrics_interval_s)) if telemetry.records_metrics else None)
        if ray.get_runtime_context().was_current_actor_reconstructed:
            log.error("SIP gateway %s restarted by Ray (its actor process died)", name)

    async def ready(self) -> list[ListenAddress]:
        """The SIP addresses the shard listens on (waits for the first start)."""
        return await self._started

    async def hangup(self, session_id: str) -> bool:
        """Agent-initiated hang-up; False when the gateway has no such live call."""
        await self._started
        return await self._shard.hangup(session_id)

    async def stats(self) -> GatewayStats:
        await self._started
        return await self._shard.stats()

    async def status(self) -> ShardStatus:
        return self._shard.status()

    async def active_sessions(self) -> list[str]:
        await self._started
        return await self._shard.active_sessions()

    async def stop(self) -> None:
        """Hang up live calls (close_call reason gateway_shutdown) and stop pjsua."""
        await self._started
        if self._metrics_task is not None:
            self._metrics_task.cancel()
        await self._shard.stop()
        self._spans.close_all()


SipGatewayActor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)(SipGateway)
