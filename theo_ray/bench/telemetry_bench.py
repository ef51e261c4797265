"""`theo bench telemetry-overhead`: what Theo's tracing and metrics cost on first audio,
telemetry on vs off in one run, measured where the caller is.

Two private call planes share the model deployments: one with `telemetry.enabled = true`
(spans to the JSON-lines files and to OTLP when `telemetry.otlp_endpoint` is set, Theo's
metrics through ray.util.metrics, each turn reported to the supervisor) and one with
`telemetry.enabled = false` (no exporter in any of its processes, no metric, no report;
its requests carry no trace, so the shared replicas record no span for them either). Calls
alternate between the planes (on first on even pairs, off first on odd ones) and play the
same questions, so the drift of a shared machine falls on both alike. Fillers are off, so
first audio is the reply's.

Figures per mode: first audio (end of caller speech -> first agent audio, from the
caller's recording) and Theo's own overhead (first audio - endpointing wait - model
compute, from the CallActor's record: the part telemetry could add to). The difference
on - off of each percentile, and the median of the paired differences (the same call
index and question on both planes), which cancels most of the per-question spread.

On a shared machine first audio spreads by hundreds of milliseconds from turn to turn,
far more than telemetry could add, so the run also times, in this process and interleaved,
the tracing work a turn does on its first-audio path (`span_cost`): per model request, the
caller's context injected and extracted and a span with its attributes queued for the batch
exporter, with a real provider and the JSON-lines exporter vs the no-op path telemetry-off
takes; times the three requests of a turn (STT final, LLM, TTS). The rest of Theo's
telemetry is off that path: turn spans and metrics are written when the turn ends, the
shards' and supervisor's gauges are sampled in the background.

A benchmark, not a test: it prints the figures and the target (p50 difference <= 2 ms).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec

from theo_ray.bench.alternating_calls import alternating_calls
from theo_ray.bench.sim_calls import (
    SimCall,
    SimCallPlane,
    TurnSample,
    caller_voice,
    questions_scenario,
    turn_samples,
    unanswered_steps,
    without_fillers,
)
from theo_ray.bench.turns_bench import QUESTIONS, SCRIPTED_LLM_APP, SCRIPTED_LLM_RULES, deploy_scripted_llm
from theo_ray.config import TheoConfig
from theo_ray.model_handles import ModelHandles
from theo_ray.sim.percentiles import Percentiles, percentiles
from theo_ray.sim.caller_runner import render_utterances

TARGET_P50_MS = 2.0
Mode = Literal["on", "off"]
# Questions the scripted test double answers in one short sentence (tests/fixtures/scripted_llm.toml):
# the caller waits for the whole answer, so short answers keep the run short.
SHORT_ANSWER_QUESTIONS = (
    "Eu quero saber da minha fatura.",
    "Quanto ficou a fatura de janeiro?",
    "Eu quero atualizar o meu CPF.",
    "Pode me falar da fatura deste mês?",
)


class TelemetryBenchSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    calls_per_mode: int = 4
    questions_per_call: int = 4
    # "scripted": the scripted language-model TEST DOUBLE through the same deployment path
    # (quick, always the same answer: less spread to hide a few milliseconds in);
    # "configured": the config's LLM.
    llm: Literal["scripted", "configured"] = "scripted"
    scripted_rules: str = str(SCRIPTED_LLM_RULES)


class ModeFigures(msgspec.Struct):
    mode: Mode
    exporters: str  # what "on" exported to ("none" when off)
    calls: int
    failed_calls: int
    unanswered_steps: int
    first_audio: Percentiles
    overhead: Percentiles  # first audio - endpointing wait - model compute (matched turns)
    turns: list[TurnSample] = []


class SpanCost(msgspec.Struct):
    """One model request's tracing work, microseconds (median over interleaved blocks)."""

    requests: int  # timed per mode
    on_us: float
    off_us: float
    per_turn_us: float  # (on - off) x REQUESTS_PER_TURN


class TelemetryBenchReport(msgspec.Struct):
    settings: TelemetryBenchSettings
    llm: str
    on: ModeFigures
    off: ModeFigures
    # on - off, ms (None when either side has no figure).
    first_audio_diff_p50_ms: float | None
    first_audio_diff_p95_ms: float | None
    overhead_diff_p50_ms: float | None
    overhead_diff_p95_ms: float | None
    # Median over question pairs (same call index and question on both planes) of on - off.
    paired_first_audio_diff_p50_ms: float | None
    paired_overhead_diff_p50_ms: float | None
    pairs: int
    span_cost: SpanCost | None = None
    target_p50_ms: float = TARGET_P50_MS
    wall_s: float = 0.0
    errors: list[str] = []


REQUESTS_PER_TURN = 3  # STT final, LLM, TTS of the first sentence


def span_cost(folder: Path, requests: int = 4000, block: int = 200) -> SpanCost:
    """Time one model request's tracing work with telemetry on and off, alternating blocks
    of `block` requests (see the module docstring); spans go to JSON lines under `folder`."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from theo_ray.telemetry.tracing import JsonLinesSpanExporter, deployment_span, extract, inject

    provider = TracerProvider()  # this bench's own, not the process's global one
    provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(folder), schedule_delay_millis=500))
    tracer = provider.get_tracer("theo-bench")
    call = tracer.start_span("call")

    def on() -> None:
        with tracer.start_as_current_span("tts.synthesize", context=extract(inject(call)),
                                          attributes={"tts.chars": 80}) as span:
            span.set_attribute("tts.first_chunk_ms", 1.0)

    def off() -> None:
        # A CallActor without a provider sends an empty context; the replica takes the no-op path.
        with deployment_span("tts.synthesize", inject(trace.INVALID_SPAN), {"tts.chars": 80}) as span:
            span.set_attribute("tts.first_chunk_ms", 1.0)

    timings: dict[str, list[float]] = {"on": [], "off": []}
    try:
        for i in range(max(1, requests // block)):
            for mode, work in ((("on", on), ("off", off)) if i % 2 == 0 else (("off", off), ("on", on))):
                started = time.perf_counter()
                for _ in range(block):
                    work()
                timings[mode].append((time.perf_counter() - started) / block * 1e6)
    finally:
        call.end()
        provider.shutdown()
    on_us, off_us = statistics.median(timings["on"]), statistics.median(timings["off"])
    return SpanCost(requests=len(timings["on"]) * block, on_us=round(on_us, 2), off_us=round(off_us, 2),
                    per_turn_us=round((on_us - off_us) * REQUESTS_PER_TURN, 1))


def telemetry_modes(config: TheoConfig) -> dict[Mode, TheoConfig]:
    """The config of each plane: "on" exports what the config names (JSON lines at least),
    "off" has `telemetry.enabled = false`."""
    t = config.telemetry
    return {
        "on": msgspec.structs.replace(config, telemetry=msgspec.structs.replace(t, enabled=True, jsonl=True,
                                                                                metrics=True)),
        "off": msgspec.structs.replace(config, telemetry=msgspec.structs.replace(t, enabled=False)),
    }


def _exporters(config: TheoConfig) -> str:
    t = config.telemetry
    if not t.enabled:
        return "none"
    parts = ["JSON lines"] if t.jsonl else []
    if t.otlp_endpoint:
        parts.append(f"OTLP {t.otlp_endpoint}")
    if t.metrics:
        parts.append("ray.util.metrics")
    return " + ".join(parts)


def _diff(a: float | None, b: float | None) -> float | None:
    return round(a - b, 1) if a is not None and b is not None else None


def _paired(on: list[TurnSample], off: list[TurnSample], field: str) -> tuple[float | None, int]:
    """Median of on - off over the turns both planes have, keyed by (call index, caller turn)."""

    def keyed(samples: list[TurnSample]) -> dict[tuple[str, int], float]:
        return {(s.session_id.rpartition("-")[2], s.caller_turn): getattr(s, field) for s in samples
                if getattr(s, field) is not None}

    a, b = keyed(on), keyed(off)
    diffs = [a[k] - b[k] for k in a.keys() & b.keys()]
    return (round(statistics.median(diffs), 1) if diffs else None), len(diffs)


def _figures(mode: Mode, config: TheoConfig, calls: list[SimCall]) -> ModeFigures:
    turns = [t for c in calls for t in turn_samples(c)]
    return ModeFigures(
        mode=mode,
        exporters=_exporters(config),
        calls=len(calls),
        failed_calls=sum(1 for c in calls if c.error),
        unanswered_steps=sum(unanswered_steps(c) for c in calls),
        first_audio=percentiles([t.first_audio_ms for t in turns]),
        overhead=percentiles([t.overhead_ms for t in turns if t.matched]),
        turns=turns,
    )


async def run_telemetry_bench(
    config: TheoConfig,
    handles: ModelHandles,
    settings: TelemetryBenchSettings = TelemetryBenchSettings(),
    out_dir: Path = Path("out/bench-telemetry"),
    say: Callable[[str], None] = print,
) -> TelemetryBenchReport:
    """Place ``calls_per_mode`` calls on each plane, alternating. Ray must be initialised."""
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    modes = telemetry_modes(config)
    conversation = without_fillers(msgspec.structs.replace(config.conversation, mode="agent"))
    questions = SHORT_ANSWER_QUESTIONS if settings.llm == "scripted" else QUESTIONS
    scenarios = [
        questions_scenario(
            f"bench_telemetry_{i + 1}",
            [questions[(i * settings.questions_per_call + k) % len(questions)]
             for k in range(settings.questions_per_call)],
        )
        for i in range(settings.calls_per_mode)
    ]
    llm = f"{config.llm.backend} {config.llm.model}"
    if settings.llm == "scripted":
        # Deployed with the "on" telemetry: its replica traces the requests that carry a trace.
        handles = ModelHandles(stt=handles.stt, llm=deploy_scripted_llm(modes["on"], settings.scripted_rules),
                               tts=handles.tts)
        llm = f"scripted test double ({Path(settings.scripted_rules).name})"
    voice = caller_voice(config)
    say("rendering the caller's utterances (cached after the first run) ...")
    for scenario in scenarios:
        await render_utterances(scenario, voice)

    planes = {mode: SimCallPlane(modes[mode], conversation, handles, f"telemetry-{mode}", warm_pool_size=1)
              for mode in ("on", "off")}
    calls = await alternating_calls(planes, scenarios, voice, out_dir, say, label="telemetry",
                                    scripted_app=SCRIPTED_LLM_APP if settings.llm == "scripted" else "")

    say("timing one model request's tracing work in this process, on vs off ...")
    cost = span_cost(out_dir / "span-cost")
    on, off = _figures("on", modes["on"], calls["on"]), _figures("off", modes["off"], calls["off"])
    paired_first_audio, pairs = _paired(on.turns, off.turns, "first_audio_ms")
    paired_overhead, _ = _paired(on.turns, off.turns, "overhead_ms")
    return TelemetryBenchReport(
        settings=settings,
        llm=llm,
        on=on,
        off=off,
        first_audio_diff_p50_ms=_diff(on.first_audio.p50, off.first_audio.p50),
        first_audio_diff_p95_ms=_diff(on.first_audio.p95, off.first_audio.p95),
        overhead_diff_p50_ms=_diff(on.overhead.p50, off.overhead.p50),
        overhead_diff_p95_ms=_diff(on.overhead.p95, off.overhead.p95),
        paired_first_audio_diff_p50_ms=paired_first_audio,
        paired_overhead_diff_p50_ms=paired_overhead,
        pairs=pairs,
        span_cost=cost,
        wall_s=round(time.monotonic() - started, 1),
        errors=[f"{c.session_id}: {c.error}" for mode in calls.values() for c in mode if c.error],
    )
