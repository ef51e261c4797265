"""/ready follows the AMI session: the real HealthServer and AmiBridge actors on a local
Ray, the fake PBX (test double) on 127.0.0.1 stopped and started again under them.

The warm-pool probe reads a stand-in CallSupervisor (a TEST DOUBLE with one warm actor):
this test is about the AMI check, and a real plane would cost a minute of the 2 cores."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid

import msgspec
import pytest

from tests.asterisk.conftest import SECRET

ray = pytest.importorskip("ray")


class _PoolStats(msgspec.Struct):
    warm: int = 1
    active: int = 0


class _StandInSupervisor:
    """TEST DOUBLE: only the `stats()` the warm-pool probe reads."""

    async def stats(self) -> _PoolStats:
        return _PoolStats()


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


async def _poll(url: str, status: int, timeout_s: float) -> tuple[int, dict]:
    deadline = time.monotonic() + timeout_s
    code, body = 0, {}
    while time.monotonic() < deadline:
        code, body = await asyncio.to_thread(_get, url)
        if code == status:
            break
        await asyncio.sleep(0.2)
    return code, body


@pytest.mark.slow
async def test_ready_goes_503_while_the_pbx_is_down_and_back_to_200(pbx, ray_cluster):
    from theo_ray.actors.ami_bridge import AmiBridgeActor
    from theo_ray.actors.health_server import HealthServerActor, ReadinessTargets
    from theo_ray.cli.asterisk_site import load_site_settings
    from theo_ray.telemetry.settings import HealthSettings

    suffix = uuid.uuid4().hex[:6]
    settings = load_site_settings(None, [f"ami.port={pbx.port}", "ami.backoff_initial_s=0.05",
                                         "ami.backoff_max_s=0.3"])
    env = {"runtime_env": {"env_vars": {"THEO_AMI_SECRET": SECRET, "RAY_AUTH_MODE": "token"}}}
    bridge = AmiBridgeActor.options(name=f"ami-{suffix}", **env).remote(settings)
    supervisor = ray.remote(num_cpus=0)(_StandInSupervisor).options(name=f"sup-{suffix}").remote()
    targets = ReadinessTargets(supervisor=f"sup-{suffix}", gateways=[], deployments={}, ami_bridge=f"ami-{suffix}",
                               namespace=ray.get_runtime_context().namespace)
    health = HealthServerActor.remote(HealthSettings(port=0, cache_s=0.2, probe_timeout_s=2.0), targets)
    try:
        assert (await bridge.start.remote()).logged_in
        host, port = await health.start.remote()
        url = f"http://{host}:{port}/ready"
        code, ready = await _poll(url, 200, 20)
        assert code == 200 and ready["ready"], ready
        ami = next(c for c in ready["checks"] if c["name"] == "ami")
        assert ami["ok"] and "logged in" in ami["detail"], ami

        await pbx.stop()  # the PBX goes away: its AMI port closes, every session drops
        code, ready = await _poll(url, 503, 20)
        assert code == 503 and not ready["ready"], ready
        failed = {c["name"]: c["detail"] for c in ready["checks"] if not c["ok"]}
        assert list(failed) == ["ami"] and "not logged in" in failed["ami"], failed

        await pbx.start()  # back on the same port: the bridge reconnects with its backoff
        code, ready = await _poll(url, 200, 30)
        assert code == 200 and ready["ready"], ready
    finally:
        try:
            await health.stop.remote()
        finally:
            for actor in (health, bridge, supervisor):
                ray.kill(actor)
