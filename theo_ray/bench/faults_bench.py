"""`theo bench faults`: every fault of `theo_ray.bench.faults`, repeated, on simulated SIP
calls into a private call plane; one row per fault with what the caller measured.

The plane runs on the cluster's STT and TTS deployments and on two scripted language-model
applications it deploys for the run and deletes after (the primary with a rule that hangs,
and a fallback), so a hung model is reproducible. A benchmark, not a test: it prints what
it measured and asserts nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from theo_ray.bench.faults import FAULTS, FaultResult, fault_scenario, run_fault
from theo_ray.bench.sim_calls import SimCallPlane, caller_voice
from theo_ray.config import TheoConfig
from theo_ray.model_handles import ModelHandles
from theo_ray.runtime.serve_apps import deploy_scripted_model
from theo_ray.sim.percentiles import Percentiles, percentiles
from theo_ray.sim.caller_runner import render_utterances

RULES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
PRIMARY_APP, FALLBACK_APP = "theo-llm-faults", "theo-llm-faults-fallback"


class FaultRow(msgspec.Struct):
    fault: str
    what: str
    repeats: int
    struck: int
    gap_ms: Percentiles  # fault -> agent audio again at the caller
    longest_silence_ms: Percentiles  # neither side audible, fault -> hang-up
    recovery_ms: Percentiles  # Theo's own takeover figure (CallActor faults)
    outcomes: dict[str, int]
    heard: str  # what the caller heard first after the fault, on the first repeat


class FaultsBenchReport(msgspec.Struct):
    rows: list[FaultRow]
    results: list[FaultResult]
    wall_s: float


async def run_faults_bench(
    config: TheoConfig,
    handles: ModelHandles,
    names: list[str],
    repeats: int,
    out_dir: Path,
    say: Callable[[str], None] = print,
) -> FaultsBenchReport:
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    say("deploying the scripted language models (a primary that hangs on 'pix', a fallback) ...")
    handles = ModelHandles(
        stt=handles.stt, tts=handles.tts,
        llm=deploy_scripted_model(config, str(RULES / "scripted_llm.toml"), PRIMARY_APP),
        llm_fallback=deploy_scripted_model(config, str(RULES / "scripted_llm_fallback.toml"), FALLBACK_APP),
    )
    voice = caller_voice(config)
    say("rendering the caller's utterances (cached after the first run) ...")
    for name in names:
        await render_utterances(fault_scenario(name, FAULTS[name].steps), voice)
    results: list[FaultResult] = []
    tag = time.strftime("%H%M%S")
    try:
        async with SimCallPlane(config, config.conversation, handles, "faults", warm_pool_size=2) as plane:
            for name in names:
                for i in range(repeats):
                    say(f"{name} {i + 1}/{repeats}: {FAULTS[name].what} ...")
                    result = await run_fault(plane, FAULTS[name], voice, out_dir, f"faults-{tag}-{name}-{i + 1}", handles)
                    say(f"  gap {result.gap_ms} ms, longest silence {result.longest_silence_ms} ms, "
                        f"{result.outcome}; heard {result.heard!r}" + (f"; {result.error}" if result.error else ""))
                    results.append(result)
                    await plane.wait_warm(90.0)  # the next call starts from a full pool
    finally:
        from ray import serve

        for app in (PRIMARY_APP, FALLBACK_APP):
            serve.delete(app)
    return FaultsBenchReport(rows=[_row(name, [r for r in results if r.fault == name]) for name in names],
                             results=results, wall_s=round(time.monotonic() - started, 1))


def _row(name: str, results: list[FaultResult]) -> FaultRow:
    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    return FaultRow(
        fault=name, what=FAULTS[name].what, repeats=len(results), struck=sum(r.struck for r in results),
        gap_ms=percentiles([r.gap_ms for r in results if r.gap_ms is not None]),
        longest_silence_ms=percentiles([r.longest_silence_ms for r in results if r.longest_silence_ms is not None]),
        recovery_ms=percentiles([r.recovery_ms for r in results if r.recovery_ms is not None]),
        outcomes=outcomes, heard=results[0].heard if results else "",
    )
