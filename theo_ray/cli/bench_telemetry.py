"""`theo bench telemetry-overhead`: first audio with Theo's tracing and metrics on vs off,
in one run (theo_ray/bench/telemetry_bench.py)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from rich.table import Table

from theo_ray.cli.console import console, say
from theo_ray.config import TheoConfig


def _d(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1f}"


def cmd_bench_telemetry(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.bench.telemetry_bench import TelemetryBenchSettings, run_telemetry_bench, telemetry_modes
    from theo_ray.cli.bench_common import _f, _mark, _out_dir, _start, _write_json

    settings = TelemetryBenchSettings(calls_per_mode=args.calls, questions_per_call=args.questions, llm=args.llm)
    # The deployments trace as "on" says (a request from the "off" plane carries no trace).
    handles = _start(telemetry_modes(config)["on"])
    out = _out_dir(config, "bench-telemetry")
    report = asyncio.run(run_telemetry_bench(config, handles, settings, out, say))

    on, off = report.on, report.off
    table = Table("ms", "telemetry on", "telemetry off", "on - off", title=(
        f"theo bench telemetry-overhead — LLM {report.llm}; on: {on.exporters}"))
    for label, a, b, diff in (
        ("first audio p50 (caller)", on.first_audio.p50, off.first_audio.p50, report.first_audio_diff_p50_ms),
        ("first audio p95 (caller)", on.first_audio.p95, off.first_audio.p95, report.first_audio_diff_p95_ms),
        ("Theo's overhead p50 (record)", on.overhead.p50, off.overhead.p50, report.overhead_diff_p50_ms),
        ("Theo's overhead p95 (record)", on.overhead.p95, off.overhead.p95, report.overhead_diff_p95_ms),
    ):
        table.add_row(label, _f(a), _f(b), _d(diff))
    table.add_row("turns", str(on.first_audio.count), str(off.first_audio.count), "")
    table.add_row(f"median of paired differences ({report.pairs} question pairs): first audio", "", "",
                  _d(report.paired_first_audio_diff_p50_ms))
    table.add_row("  Theo's overhead", "", "", _d(report.paired_overhead_diff_p50_ms))
    console.print(table)
    cost = report.span_cost
    if cost is not None:
        say(f"one model request's tracing work (in process, {cost.requests} requests per mode, interleaved): "
            f"on {cost.on_us:.1f} µs, off {cost.off_us:.1f} µs -> {cost.per_turn_us / 1000:.2f} ms per turn "
            f"on the first-audio path (STT, LLM, TTS requests)")
    diff = report.first_audio_diff_p50_ms
    say(f"first audio p50 on - off {_d(diff)} ms — target ≤ {report.target_p50_ms:g} ms: "
        f"{_mark(diff, report.target_p50_ms)}; calls failed {on.failed_calls + off.failed_calls}, "
        f"steps timed out {on.unanswered_steps + off.unanswered_steps}; {report.wall_s:.0f} s")
    for error in report.errors:
        say(f"[red]error[/red] {error}")
    say(f"recordings in {out}")
    _write_json(Path(args.json) if args.json else out / "bench-telemetry.json", report)
    return 0 if not (on.failed_calls or off.failed_calls) else 1


def add_parsers(bsub: argparse._SubParsersAction) -> None:
    bench = bsub.add_parser("telemetry-overhead",
                            help="first audio with tracing + metrics on vs off (two planes, alternating calls)")
    bench.add_argument("--calls", type=int, default=4, help="calls per mode (default 4)")
    bench.add_argument("--questions", type=int, default=4, help="questions per call (default 4)")
    bench.add_argument("--llm", choices=("scripted", "configured"), default="scripted",
                       help="the scripted test double (quick, fixed answers: default) or the configured LLM")
    bench.add_argument("--json", help="where to write the JSON report")
    bench.set_defaults(run=cmd_bench_telemetry)
