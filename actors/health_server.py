"""HealthServer: the HTTP endpoints an orchestrator or an on-call engineer asks.

- `GET /health`: liveness — 200 while this actor's process answers;
- `GET /ready`: readiness as JSON — every gateway shard listening, the AMI session logged in
  with a Pong younger than `health.ami_max_pong_age_s` (only behind Asterisk), each model
  deployment answered a real request (`info()` through its DeploymentHandle, so a dead or
  missing replica fails it), warm CallActors in the supervisor's pool; 503 when any is not;
- `GET /metrics`: this process's own metrics through prometheus-client (theo_ready per
  check, the process collector). Theo's call metrics are on Ray's metrics export.

A named actor (`theo up` starts `theo-health` detached on its own node); the probes run at
most every `health.cache_s` whatever the request rate, each bounded by `probe_timeout_s`.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
import ray

from theo_ray.asterisk.results import AmiHealth
from theo_ray.telemetry.settings import HealthSettings

log = logging.getLogger("theo.health")


class ReadinessTargets(msgspec.Struct, frozen=True):
    """What /ready probes: actor names in `namespace` and (app, deployment) per model role."""

    supervisor: str
    gateways: list[str]
    deployments: dict[str, tuple[str, str]]
    ami_bridge: str = ""  # "" when call.use_ami is off
    namespace: str = ""


class Check(msgspec.Struct):
    name: str  # "gateway:sip-gateway-0", "ami", "deployment:stt", "warm_pool"
    ok: bool
    detail: str
    ms: float


class Readiness(msgspec.Struct):
    ready: bool
    checked_at: float  # wall clock
    checks: list[Check]


def ami_check(health: AmiHealth, max_pong_age_s: float) -> tuple[bool, str]:
    """Ready only logged in with a recent Pong."""
    if not health.logged_in:
        return False, f"not logged in ({health.reason})"
    age = health.last_pong_age_s
    if age is None or age > max_pong_age_s:
        return False, f"no Pong for {'ever' if age is None else f'{age:.1f} s'} (limit {max_pong_age_s:g} s)"
    return True, f"logged in, Pong {age:.1f} s ago, ping {health.last_ping_rtt_ms or 0:.0f} ms"


class HealthServer:
    def __init__(self, settings: HealthSettings, targets: ReadinessTargets) -> None:
        self.settings = settings
        self.targets = targets
        self._last: Readiness | None = None
        self._probing: asyncio.Task | None = None
        self._runner = None
        self._port = 0
        from prometheus_client import CollectorRegistry, Gauge
        from prometheus_client import ProcessCollector

        self._registry = CollectorRegistry()
        ProcessCollector(registry=self._registry)
        self._ready_gauge = Gauge("theo_ready", "1 when the check passed at the last probe", ["check"],
                                  registry=self._registry)

    async def start(self) -> tuple[str, int]:
        """Listen on health.host:health.port (port 0: a free one); returns the address."""
        from aiohttp import web

        if self._runner is None:
            app = web.Application()
            app.router.add_get("/health", self._health)
            app.router.add_get("/ready", self._ready)
            app.router.add_get("/metrics", self._metrics)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
            await site.start()
            self._port = self._runner.addresses[0][1]
            log.info("health server on http://%s:%d", self.settings.host, self._port)
        return self.settings.host, self._port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------ HTTP

    async def _health(self, request):
        from aiohttp import web

        return web.json_response({"status": "alive"})

    async def _ready(self, request):
        from aiohttp import web

        readiness = await self.readiness()
        return web.Response(body=msgspec.json.encode(readiness), content_type="application/json",
                            status=200 if readiness.ready else 503)

    async def _metrics(self, request):
        from aiohttp import web
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        await self.readiness()
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # ------------------------------------------------------------ probes

    async def readiness(self) -> Readiness:
        """The latest probe result, probing again when older than health.cache_s."""
        if self._last is not None and time.time() - self._last.checked_at < self.settings.cache_s:
            return self._last
        if self._probing is None or self._probing.done():
            self._probing = asyncio.create_task(self._probe_all())
        return await asyncio.shield(self._probing)

    async def _probe_all(self) -> Readiness:
        t = self.targets
        probes = [(f"gateway:{name}", self._gateway(name)) for name in t.gateways]
        probes += [(f"deployment:{role}", self._deployment(app, dep)) for role, (app, dep) in t.deployments.items()]
        probes.append(("warm_pool", self._warm_pool()))
        if t.ami_bridge:
            probes.append(("ami", self._ami()))
        checks = await asyncio.gather(*(self._timed(name, probe) for name, probe in probes))
        for check in checks:
            self._ready_gauge.labels(check.name).set(1 if check.ok else 0)
        self._last = Readiness(ready=all(c.ok for c in checks), checked_at=time.time(), checks=list(checks))
        return self._last

    async def _timed(self, name: str, probe) -> Check:
        started = time.perf_counter()
        try:
            ok, detail = await asyncio.wait_for(probe, self.settings.probe_timeout_s)
        except asyncio.TimeoutError:
            ok, detail = False, f"no answer within {self.settings.probe_timeout_s:g} s"
        except Exception as exc:  # noqa: BLE001 - any failure is the check's detail
            ok, detail = False, f"{type(exc).__name__}: {str(exc)[:200]}"
        return Check(name=name, ok=ok, detail=detail, ms=round((time.perf_counter() - started) * 1000.0, 1))

    def _actor(self, name: str):
        return ray.get_actor(name, namespace=self.targets.namespace or None)

    async def _gateway(self, name: str) -> tuple[bool, str]:
        status = await self._actor(name).status.remote()
        where = ", ".join(f"{a.transport}:{a.host}:{a.port}" for a in status.addresses)
        return status.state == "listening", f"{status.state} {where}".strip()

    async def _deployment(self, app: str, deployment: str) -> tuple[bool, str]:
        from ray import serve

        info = await serve.get_deployment_handle(deployment, app_name=app).info.remote()
        return True, f"{app}: {info.backend}"

    async def _warm_pool(self) -> tuple[bool, str]:
        stats = await self._actor(self.targets.supervisor).stats.remote()
        return stats.warm > 0, f"{stats.warm} warm CallActors, {stats.active} calls"

    async def _ami(self) -> tuple[bool, str]:
        health = await self._actor(self.targets.ami_bridge).health.remote()
        return ami_check(health, self.settings.ami_max_pong_age_s)


HealthServerActor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)(HealthServer)
