"""The call plane on a running cluster: the CallSupervisor, the SipGateway shards and
(behind Asterisk) the AmiBridge, as named actors.

One class serves every use: `theo up` / `theo demo` start the production plane (detached
actors named "call-supervisor", "sip-gateway-<k>", "ami-bridge" that outlive the driver and
are found again by name); benchmarks and tests start private planes (`label=...`: unique
names, free loopback ports, no AMI) that never meet the production one on the same cluster.

Why shards: pjsua is one instance per process, and the pjsua2-python wheel is built with
pjsua's default PJSUA_MAX_CALLS = 4 (measured: the 5th makeCall fails with PJ_ETOOMANY, the
5th incoming INVITE gets 486 Busy Here). So a node runs `sip.shards` gateway actors (each its
own process), shard k on port `sip.port + k`; Asterisk's dialplan tries them in turn, moving
on at a 486. A node answers `shards x max_calls` calls.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import msgspec

# Re-exported: the names were defined here before they moved to theo_ray.actor_names.
from theo_ray.actor_names import CALL_ACTOR_PREFIX
from theo_ray.actor_names import AMI_BRIDGE as AMI_BRIDGE
from theo_ray.actor_names import GATEWAY_PREFIX as GATEWAY_PREFIX
from theo_ray.actor_names import SUPERVISOR as SUPERVISOR
from theo_ray.actor_names import gateway_name as gateway_name
from theo_ray.config import TheoConfig
from theo_ray.conversation.settings import ConversationSettings
from theo_ray.media.settings import MediaSettings
from theo_ray.model_handles import ModelHandles
from theo_ray.sip.free_port import free_sip_port

def _get(name: str):
    import ray

    try:
        return ray.get_actor(name)
    except ValueError:
        return None


def _quiet(_: str) -> None:
    pass


class CallPlane:
    """A CallSupervisor + `shards` SipGateway actors (+ the AmiBridge when `call.use_ami`).

    `label=""` is the production plane (detached, found by name if it runs already, ports
    and peers from the config). Any other label makes a private plane: names unique to this
    instance, free loopback SIP ports, only loopback peers, no AMI unless `use_ami` (then
    an AmiBridge of its own, to `config.asterisk.ami`: a test's AMI double); `conversation`,
    `media`, `warm_pool_size` and `shards` override the config for it. Ray must be
    initialised.
    """

    def __init__(
        self,
        config: TheoConfig,
        handles: ModelHandles | None,
        *,
        label: str = "",
        conversation: ConversationSettings | None = None,
        media: MediaSettings | None = None,
        warm_pool_size: int | None = None,
        shards: int | None = None,
        use_ami: bool | None = None,
    ) -> None:
        self.config = config
        self.handles = handles
        self.label = label
        self.conversation = conversation or config.conversation
        if handles is None and self.conversation.mode != "echo":
            raise ValueError("an agent-mode call plane needs the model handles")
        self.media = media or config.media
        self.warm_pool_size = config.call.warm_pool_size if warm_pool_size is None else warm_pool_size
        self.shards = config.sip.shards if shards is None else shards
        if label:
            tag = uuid.uuid4().hex[:8]
            self.supervisor_name = f"{label}-supervisor-{tag}"
            self._gateway_prefix = f"{label}-gateway-{tag}-"
            self.ami_bridge_name = f"{label}-ami-bridge-{tag}"
            self.use_ami = bool(use_ami)
        else:
            self.supervisor_name = SUPERVISOR
            self._gateway_prefix = GATEWAY_PREFIX
            self.ami_bridge_name = AMI_BRIDGE
            self.use_ami = config.call.use_ami if use_ami is None else use_ami
        self.gateway_names = [gateway_name(k, self._gateway_prefix) for k in range(self.shards)]
        self.supervisor = None
        self.gateways: list = []
        self.ami_bridge = None
        self.uris: list[str] = []  # one per shard, UDP
        self.tls_uris: list[str] = []  # one per shard when sip.tls.enabled
        self.sip_addresses: list[str] = []  # "transport:host:port" of every shard

    @property
    def gateway(self):
        """Shard 0 (the only one of a one-shard plane)."""
        return self.gateways[0]

    @property
    def uri(self) -> str:
        return self.uris[0]

    def uri_for(self, index: int) -> str:
        """The shard URI for the `index`-th call of a run: round robin over the shards."""
        return self.uris[index % len(self.uris)]

    def _sip_settings(self, shard: int):
        sip = self.config.sip
        if self.label:
            host = self.config.call.rtp_host
            tls = msgspec.structs.replace(sip.tls, port=0)  # pjsip picks a free TLS port
            return msgspec.structs.replace(sip, host=host, port=free_sip_port(host), allowed_peers=[host], tls=tls)
        tls = msgspec.structs.replace(sip.tls, port=sip.tls.port + shard if sip.tls.port else 0)
        return msgspec.structs.replace(sip, port=sip.port + shard if sip.port else 0, tls=tls)

    def _call_data_dir(self) -> str:
        """Where this plane's call data goes: the output folder, or (a private plane of a
        benchmark or test) a folder of its own, so no two supervisors share a spool or log."""
        out = Path(self.config.paths.output_dir).expanduser()
        return str(out / "planes" / self.label if self.label else out)

    def telemetry_env(self) -> dict[str, str]:
        """The tracing environment of this plane's processes (telemetry.*)."""
        from theo_ray.telemetry.tracing import telemetry_env_for

        return telemetry_env_for(self.config.telemetry, self.config.paths.output_dir)

    async def start(self, say: Callable[[str], None] = _quiet) -> CallPlane:
        """Start (or, for the production plane, find) every actor; returns when calls can come in."""
        from theo_ray.actors.call_supervisor import CallSupervisorRemote
        from theo_ray.actors.sip_gateway import SipGatewayActor
        from theo_ray.runtime.placement import media_options

        cfg = self.config
        detached = {} if self.label else {"lifetime": "detached"}
        # On a cluster with a media node (`theo_media`), every plane actor runs there; the
        # CallActors follow their gateway shard's node (the supervisor places them).
        detached |= media_options(cfg.call.rtp_host if self.label else cfg.sip.host)
        env = self.telemetry_env()
        if env:  # every plane process traces (CallActors inherit the supervisor's runtime_env)
            detached["runtime_env"] = {"env_vars": {"RAY_AUTH_MODE": "token", **env}}
        ami_name = ""
        if self.use_ami:
            from theo_ray.actors.ami_bridge import AmiBridgeActor

            ami_name = self.ami_bridge_name
            self.ami_bridge = _get(ami_name) or AmiBridgeActor.options(name=ami_name, **detached).remote(
                cfg.asterisk
            )
            health = await self.ami_bridge.start.remote()
            say(f"  AMI bridge: {health}")
        self.supervisor = None if self.label else _get(self.supervisor_name)
        if self.supervisor is None:
            started = time.perf_counter()
            say("starting the CallSupervisor (pre-rendering fillers, warming CallActors) ...")
            self.supervisor = CallSupervisorRemote.options(name=self.supervisor_name, **detached).remote(
                msgspec.structs.replace(cfg.call, warm_pool_size=self.warm_pool_size, use_ami=self.use_ami),
                self.media, self.conversation, str(cfg.model_cache()), self.handles,
                cfg.tts.voice if self.handles is not None else "", self.gateway_names[0], ami_name,
                (cfg.llm.breaker_failures, cfg.llm.breaker_open_s), cfg.call_data, self._call_data_dir(),
                cfg.telemetry,
            )
            stats = await self.supervisor.start.remote()
            say(f"  ready in {time.perf_counter() - started:.1f} s ({stats.warm} warm CallActors)")
            if self.handles is not None and cfg.conversation.mode == "agent":
                started = time.perf_counter()
                await self._warm_language_model()
                say(f"  language model primed with this plane's persona in {time.perf_counter() - started:.1f} s")
        for shard, name in enumerate(self.gateway_names):
            gateway = None if self.label else _get(name)
            if gateway is None:
                gateway = SipGatewayActor.options(name=name, **detached).remote(
                    self._sip_settings(shard), self.supervisor_name, name, cfg.telemetry
                )
            self.gateways.append(gateway)
        listening = await asyncio.gather(*(g.ready.remote() for g in self.gateways))
        for addresses in listening:
            self.sip_addresses += [f"{a.transport}:{a.host}:{a.port}" for a in addresses]
            udp = next((a for a in addresses if a.transport == "udp"), None)
            if udp is not None:  # none on a TLS-only gateway (sip.transports = [])
                self.uris.append(f"sip:{cfg.sip.account_user}@{udp.host}:{udp.port}")
            self.tls_uris += [f"sip:{cfg.sip.account_user}@{a.host}:{a.port};transport=tls"
                              for a in addresses if a.transport == "tls"]
        say(f"  SIP gateway: {self.shards} shard(s) x {cfg.sip.max_calls} calls, listening on "
            f"{', '.join(self.sip_addresses)}")
        return self

    # ------------------------------------------------------------ calls on the plane

    async def call_actor(self, session_id: str):
        return await self.supervisor.call_actor.remote(session_id)

    async def media_stats(self, session_id: str):
        actor = await self.call_actor(session_id)
        if actor is None:
            raise KeyError(f"no live call {session_id}")
        return (await actor.stats.remote()).media

    async def hangup(self, session_id: str) -> bool:
        """Agent-side hang-up through whichever shard holds the call."""
        results = await asyncio.gather(*(g.hangup.remote(session_id) for g in self.gateways))
        return any(results)

    async def gateway_stats(self) -> list:
        return list(await asyncio.gather(*(g.stats.remote() for g in self.gateways)))

    async def _warm_language_model(self) -> None:
        """One request with the start of every call's prompt, so the first caller does not
        wait for its prefill: the replica may have been deployed with another persona (a
        `theo demo` joining a running cluster), and llama.cpp keeps only the last prompt."""
        from theo_ray.runtime.serve_apps import call_prompt_start

        async for _ in self.handles.llm.options(stream=True).generate.remote(call_prompt_start(self.config)):
            pass

    async def wait_warm(self, timeout: float = 60.0) -> None:
        """Until the warm pool is full again (refills run after each answered call)."""
        deadline = time.monotonic() + timeout
        while (await self.supervisor.stats.remote()).warm < self.warm_pool_size:
            if time.monotonic() > deadline:
                raise TimeoutError("the CallSupervisor's warm pool did not refill")
            await asyncio.sleep(0.1)

    async def record(self, session_id: str, timeout_s: float = 10.0):
        """The call's CallRecord once the supervisor closed it (the last one seen on timeout)."""
        return await closed_record(self.supervisor, session_id, timeout_s)

    # ------------------------------------------------------------ teardown

    async def stop(self) -> None:
        """Hang up live calls, stop pjsua and the supervisor, kill the actors."""
        import ray

        try:
            await asyncio.gather(*(g.stop.remote() for g in self.gateways), return_exceptions=True)
            if self.supervisor is not None:
                await self.supervisor.shutdown.remote()
            if self.label and self.ami_bridge is not None:
                await asyncio.gather(self.ami_bridge.stop.remote(), return_exceptions=True)
        finally:
            private_bridge = self.ami_bridge if self.label else None  # the production one: stop_call_plane
            for actor in (*self.gateways, self.supervisor, private_bridge):
                if actor is not None:
                    ray.kill(actor)
            self.gateways = []
            self.supervisor = None
            if private_bridge is not None:
                self.ami_bridge = None
            _kill_named(f"{CALL_ACTOR_PREFIX}{self.supervisor_name}-")  # detached: none may outlive the plane

    async def __aenter__(self) -> CallPlane:
        return await self.start()

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()


def _kill_named(prefix: str) -> None:
    """Kill this namespace's named actors whose name starts with `prefix`."""
    import ray
    from ray.util import list_named_actors

    namespace = ray.get_runtime_context().namespace
    for entry in list_named_actors(all_namespaces=True):
        if entry["namespace"] == namespace and entry["name"].startswith(prefix):
            try:
                ray.kill(ray.get_actor(entry["name"], namespace=namespace))
            except ValueError:
                pass  # ended meanwhile


async def closed_record(supervisor, session_id: str, timeout_s: float = 10.0):
    """A call's CallRecord from a CallSupervisor handle once the call was closed (the last
    one seen on timeout; None when the supervisor never had the call)."""
    deadline = time.monotonic() + timeout_s
    record = None
    while time.monotonic() < deadline:
        record = await supervisor.call_record.remote(session_id)
        if record is not None and record.ended_at:
            break
        await asyncio.sleep(0.2)
    return record


async def start_call_plane(
    config: TheoConfig, handles: ModelHandles | None, say: Callable[[str], None] = print
) -> CallPlane:
    """The production plane (`theo up`, `theo demo`), started or found by name."""
    return await CallPlane(config, handles).start(say)


async def stop_call_plane(namespace: str | None = None) -> list[str]:
    """Stop the production plane's actors in `namespace` (default: this driver's), every
    gateway shard included, whatever their count; returns the names stopped."""
    import ray
    from ray.util import list_named_actors

    namespace = namespace or ray.get_runtime_context().namespace
    names = [
        e["name"] for e in list_named_actors(all_namespaces=True)
        if e["namespace"] == namespace and (e["name"] in (SUPERVISOR, AMI_BRIDGE) or e["name"].startswith(GATEWAY_PREFIX))
    ]
    # CallActors the supervisor's shutdown did not reach (e.g. it had crashed) go last.
    leftovers = [
        e["name"] for e in list_named_actors(all_namespaces=True)
        if e["namespace"] == namespace and e["name"].startswith(CALL_ACTOR_PREFIX)
    ]
    # Gateways first: their BYEs close calls through the supervisor, which must still run.
    names.sort(key=lambda n: (not n.startswith(GATEWAY_PREFIX), n))
    for name in names:
        try:
            actor = ray.get_actor(name, namespace=namespace)
        except ValueError:
            continue
        try:
            if name.startswith(GATEWAY_PREFIX):
                await actor.stop.remote()
            elif name == SUPERVISOR:
                await actor.shutdown.remote()
        except Exception as exc:  # noqa: BLE001 - a dead actor is still killed below
            print(f"  {name}: stop failed ({exc}); killing it")
        finally:
            ray.kill(actor)
    for name in leftovers:
        try:
            ray.kill(ray.get_actor(name, namespace=namespace))
        except ValueError:
            pass  # the supervisor's shutdown already ended it
    return names
