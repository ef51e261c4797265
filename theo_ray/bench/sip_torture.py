"""`theo bench sip-torture`: bounded SIPp attacks on a private call plane, one row per attack.

Each attack is one or more SIPp processes (`theo_ray/bench/sipp_runner.py`, scenarios in
`theo_ray/bench/data/sipp/`), every one bounded in calls (`-m`), rate and time. Around it
the plane is measured (`theo_ray/bench/plane_health.py`): crashes, leaks once every call
ended, the refusals the gateway counted, and a normal call placed right after (answered?
greeting heard? how soon?). A benchmark: it prints what it measured; the slow test
tests/security/test_sipp_torture.py asserts on a small subset of the same attacks.

The plane is a private one on loopback whose gateway admits every 127.0.0.0/8 address (so
the many-sources attack meets the admission control, not the IP ACL), with the cluster's
speech deployments and the scripted language model (the test double behind the same
LanguageModel deployment code): the attacks measure the SIP edge, not a model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from theo_ray.bench.plane_health import (
    HealthDelta,
    NormalCall,
    compare,
    normal_call,
    plane_pids,
    settle,
    snapshot,
)
from theo_ray.bench.sipp_runner import SippResult, SippRun, run_sipp
from theo_ray.config import TheoConfig
from theo_ray.model_handles import ModelHandles
from theo_ray.runtime.call_plane import CallPlane
from theo_ray.sim.caller_voice import CallerVoice
from theo_ray.sip.free_port import free_sip_port

SCRIPTED_RULES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "scripted_llm.toml"
SCRIPTED_APP = "theo-llm-torture"
SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]  # the many-sources attack (Linux routes 127/8 to lo)


class Attack(msgspec.Struct, frozen=True):
    name: str
    what: str
    runs: list[SippRun]


def _scaled(n: int, scale: float) -> int:
    return max(1, round(n * scale))


def attacks(scale: float = 1.0) -> dict[str, Attack]:
    """The catalogue; `scale` multiplies every call count (0.2: a quick run)."""
    def one(scenario: str, calls: int, rate: float, **kw) -> list[SippRun]:
        n = _scaled(calls, scale)
        return [SippRun(scenario=scenario, calls=n, rate=rate, timeout_s=kw.pop("timeout_s", n / rate + 30.0), **kw)]

    per_source = _scaled(40, scale)
    return {a.name: a for a in (
        Attack("flood_one_source", "300 INVITEs at 50/s from 127.0.0.1, answered calls held 2 s",
               one("call.xml", 300, 50, hold_ms=2000, concurrent=200)),
        Attack("many_sources", "8 sources (127.0.0.2..9) x 40 INVITEs at 20/s each, held 2 s",
               [SippRun(scenario="call.xml", calls=per_source, rate=20, source=s, hold_ms=2000,
                        timeout_s=per_source / 20 + 30.0) for s in SOURCES]),
        Attack("malformed_sdp", "INVITEs whose SDP does not parse, 25/s",
               one("malformed_sdp.xml", 50, 25)),
        Attack("oversized_sdp", "INVITEs with a 6 kB SDP, 25/s", one("oversized_sdp.xml", 50, 25)),
        Attack("missing_headers", "SDP body without Content-Type, no Max-Forwards/Contact, 25/s",
               one("missing_headers.xml", 50, 25)),
        Attack("duplicate_headers", "two From and two Max-Forwards headers, 25/s",
               one("duplicate_headers.xml", 50, 25)),
        Attack("unknown_codecs", "offers of Opus/AMR/GSM/iLBC only, 25/s", one("unknown_codecs.xml", 50, 25)),
        Attack("reinvite_storm", "calls each sent 20 re-INVITEs back to back, 2 calls/s",
               one("reinvite_storm.xml", 6, 2, concurrent=3)),
        Attack("never_ack", "200 OKs never ACKed (retransmissions absorbed 12 s), 3/s",
               one("never_ack.xml", 6, 3, default_behaviors=False)),
        Attack("cancel_race", "CANCEL as soon as 100 Trying arrives, 20/s", one("cancel_race.xml", 60, 20)),
        Attack("bye_unknown_dialog", "BYEs for dialogs that never existed, 50/s",
               one("bye_unknown_dialog.xml", 200, 50)),
    )}


class TorturePlane(CallPlane):
    """A private plane whose shards admit all of 127.0.0.0/8 (the ACL is not what is attacked)."""

    def _sip_settings(self, shard: int):
        return msgspec.structs.replace(super()._sip_settings(shard), allowed_peers=["127.0.0.0/8"])


class AttackRow(msgspec.Struct):
    attack: str
    what: str
    sent: int  # calls (Call-IDs) the attack opened
    requests: int  # every request SIPp sent
    finals: dict[str, int]  # final responses by code (one per transaction)
    unanswered: int
    crashes: int
    leaked_calls: int
    leaked_actors: int
    leaked_sockets: int
    refusals: dict[str, int]  # what the gateway counted
    recycles: int
    after: NormalCall
    wall_s: float
    errors: list[str] = []


class TortureReport(msgspec.Struct):
    baseline: NormalCall  # the normal call before any attack
    rows: list[AttackRow]
    wall_s: float


def _merge(results: list[SippResult]) -> tuple[int, int, dict[str, int], int, list[str]]:
    finals: dict[str, int] = {}
    for r in results:
        for code, n in r.finals.items():
            finals[code] = finals.get(code, 0) + n
    errors = [f"{r.source}: {r.error}" for r in results if r.error]
    return (sum(r.started for r in results), sum(r.requests_sent for r in results), dict(sorted(finals.items())),
            sum(r.unanswered for r in results), errors)


async def run_attack(plane: CallPlane, attack: Attack, work_dir: Path, settle_s: float) -> tuple[list[SippResult], HealthDelta, float]:
    """Run the attack's SIPp processes at once; wait for the plane to settle; the difference."""
    status = await plane.gateways[0].status.remote()
    udp = next(a for a in status.addresses if a.transport == "udp")
    target = f"{udp.host}:{udp.port}"
    before = await snapshot(plane, await plane_pids(plane))
    started = time.monotonic()
    results = await asyncio.gather(*(
        run_sipp(run, target, work_dir / attack.name, free_sip_port(run.source), free_sip_port(run.source))
        for run in attack.runs
    ))
    after = await settle(plane, settle_s)
    return list(results), compare(before, after), time.monotonic() - started


async def run_torture_bench(
    config: TheoConfig, handles: ModelHandles, names: list[str], out_dir: Path, voice: CallerVoice,
    scale: float = 1.0, say: Callable[[str], None] = print,
) -> TortureReport:
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    catalogue = attacks(scale)
    settle_s = config.sip.ack_timeout_s + 30.0  # never-ACKed calls are released after ack_timeout_s
    rows: list[AttackRow] = []
    async with TorturePlane(config, handles, label="torture", warm_pool_size=2, shards=1) as plane:
        baseline = await normal_call(plane, voice, out_dir, "torture-baseline")
        say(f"baseline call: answered {baseline.answered}, greeting at {baseline.first_audio_ms} ms {baseline.error}")
        await settle(plane, settle_s)
        for name in names:
            attack = catalogue[name]
            say(f"{name}: {attack.what} ...")
            results, delta, wall = await run_attack(plane, attack, out_dir / "sipp", settle_s)
            after = await normal_call(plane, voice, out_dir, f"torture-after-{name}")
            await settle(plane, settle_s)
            sent, requests, finals, unanswered, errors = _merge(results)
            row = AttackRow(
                attack=name, what=attack.what, sent=sent, requests=requests, finals=finals, unanswered=unanswered,
                crashes=delta.crashes, leaked_calls=delta.leaked_calls, leaked_actors=delta.leaked_actors,
                leaked_sockets=delta.leaked_sockets, refusals=delta.refusals, recycles=delta.recycles, after=after,
                wall_s=round(wall, 1), errors=errors + ([delta.detail] if delta.detail else []),
            )
            say(f"  sent {sent}, finals {finals}, crashes {row.crashes}, leaks calls/actors/sockets "
                f"{row.leaked_calls}/{row.leaked_actors}/{row.leaked_sockets}; normal call after: "
                f"{f'greeting at {after.first_audio_ms} ms' if after.greeting_heard else after.error or 'no greeting'}")
            rows.append(row)
    return TortureReport(baseline=baseline, rows=rows, wall_s=round(time.monotonic() - started, 1))


def speech_handles(config: TheoConfig, say: Callable[[str], None] = print) -> tuple:
    """The STT and TTS applications' handles, each deployed when it does not run yet (the
    language model is not deployed: these planes use the scripted one)."""
    from ray import serve

    from theo_ray.runtime.serve_apps import APPS, build_application, running_apps

    running = running_apps()
    serve.start(http_options={"host": "127.0.0.1", "port": 8000}, proxy_location="Disabled")
    for kind in ("stt", "tts"):
        app = APPS[kind][0]
        if app not in running:
            say(f"deploying {app} ...")
            serve.run(build_application(kind, config), name=app, route_prefix=None)
    return tuple(serve.get_deployment_handle(APPS[kind][1], app_name=APPS[kind][0]) for kind in ("stt", "tts"))


def torture_handles(config: TheoConfig, say: Callable[[str], None] = print) -> ModelHandles:
    """The speech deployments and the scripted language model."""
    from theo_ray.runtime.serve_apps import deploy_scripted_model

    stt, tts = speech_handles(config, say)
    say("deploying the scripted language model ...")
    return ModelHandles(stt=stt, llm=deploy_scripted_model(config, str(SCRIPTED_RULES), SCRIPTED_APP), tts=tts)


def remove_scripted_model() -> None:
    from ray import serve

    serve.delete(SCRIPTED_APP)
