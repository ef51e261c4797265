"""`theo bench turns`, `theo bench pipeline` and `theo loadtest`: simulated SIP calls into
the running stack, measured where the caller is; each prints a table and writes JSON."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import msgspec
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from theo_ray.cli.bench_common import _f, _mark, _out_dir, _start, _write_json
from theo_ray.cli.console import console, say
from theo_ray.config import TheoConfig


# ---------------------------------------------------------------- theo bench turns


def cmd_bench_turns(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.bench.turns_bench import TurnsBenchSettings, run_turns_bench

    settings = TurnsBenchSettings(
        trials=args.trials, turns_per_call=args.turns_per_call, barge_ins_per_call=args.barge_ins_per_call,
        barge_in_after_ms=args.barge_in_after_ms, fillers=args.fillers, barge_in_llm=args.barge_in_llm,
    )
    handles = _start(config)
    out = _out_dir(config, "bench-turns")
    report = asyncio.run(run_turns_bench(config, handles, settings, out, say))

    table = Table("segment", "p50 ms", "p95 ms", "n", "target", title=(
        f"theo bench turns — {report.turn_trials} turns ({report.turns_matched} split by the CallActor's "
        f"records), {report.barge_in_trials} interruptions; LLM {report.llm}"))
    fa = report.first_audio
    table.add_row("[bold]end of caller speech -> first agent audio (caller)[/bold]", _f(fa.p50), _f(fa.p95),
                  str(fa.count), "")
    for seg in report.segments:
        p = seg.figures
        target = ""
        if seg.name == "overhead_ms":
            target = f"≤ {report.target_overhead_ms:.0f} ms: p50 {_mark(p.p50, report.target_overhead_ms)}, " \
                     f"p95 {_mark(p.p95, report.target_overhead_ms)}"
        table.add_row(f"  {seg.what}", _f(p.p50), _f(p.p95), str(p.count), target)
    br = report.barge_in_reaction
    table.add_row(f"[bold]barge-in: caller onset -> agent audio stops (caller)[/bold] [{report.barge_in_llm}]",
                  _f(br.p50), _f(br.p95), f"{br.count}/{report.barge_in_trials}",
                  f"p95 ≤ {report.target_barge_in_p95_ms:.0f} ms: {_mark(br.p95, report.target_barge_in_p95_ms)}")
    for label, p in (("  caller onset -> CallActor paused playout (RTP in, jitter buffer, detection)",
                      report.barge_in_to_pause),
                     ("    of which inside the CallActor: its onset estimate -> paused", report.barge_in_actor_pause),
                     ("  paused -> agent audio stops at the caller (fade, in flight, caller jitter buffer)",
                      report.barge_in_pause_to_silence)):
        table.add_row(label, _f(p.p50), _f(p.p95), str(p.count), "")
    console.print(table)
    say(f"calls {report.calls} (failed {report.failed_calls}), steps timed out {report.unanswered_steps}, "
        f"turns with a filler {report.turns_with_filler}, interruptions yielded to "
        f"{report.barge_ins_yielded}/{report.barge_in_trials}; {report.wall_s:.0f} s")
    for error in report.errors:
        say(f"[red]error[/red] {error}")
    say(f"recordings in {out}")
    _write_json(Path(args.json) if args.json else out / "bench-turns.json", report)
    return 0 if not report.failed_calls else 1


# ---------------------------------------------------------------- theo bench pipeline


def cmd_bench_pipeline(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.bench.pipeline_bench import PipelineBenchSettings, run_pipeline_bench

    settings = PipelineBenchSettings(calls_per_mode=args.calls, questions_per_call=args.questions, llm=args.llm,
                                     reply_tokens=args.reply_tokens)
    handles = _start(config)
    out = _out_dir(config, "bench-pipeline")
    report = asyncio.run(run_pipeline_bench(config, handles, settings, out, say))

    table = Table("first agent audio (caller), ms", "sequential", "streaming", "streaming/sequential",
                  title=f"theo bench pipeline — LLM {report.llm}, TTS {report.tts}, replies of "
                        + (f"{report.settings.reply_tokens} tokens" if report.settings.reply_tokens
                           else "the model's own length") + " in both modes")
    q, s = report.sequential.first_audio, report.streaming.first_audio
    table.add_row("p50", _f(q.p50), _f(s.p50), f"{report.ratio_p50}" if report.ratio_p50 is not None else "—")
    table.add_row("p95", _f(q.p95), _f(s.p95), f"{report.ratio_p95}" if report.ratio_p95 is not None else "—")
    table.add_row("mean", _f(q.mean), _f(s.mean), f"{report.ratio_mean}" if report.ratio_mean is not None else "—")
    table.add_row("turns", str(q.count), str(s.count), "")
    table.add_row("reply length p50 (max), LLM tokens", f"{_f(report.sequential.reply_tokens.p50)} "
                  f"({_f(report.sequential.reply_tokens.max)})", f"{_f(report.streaming.reply_tokens.p50)} "
                  f"({_f(report.streaming.reply_tokens.max)})", "")
    for a, b in zip(report.sequential.segments, report.streaming.segments):
        table.add_row(f"  p50 {a.what}", _f(a.figures.p50), _f(b.figures.p50), "")
    console.print(table)
    ratio = report.ratio_p50
    say(f"ratio (p50) {ratio} — target ≤ {report.target_ratio}: "
        f"{_mark(ratio, report.target_ratio) if ratio is not None else '—'}; {report.wall_s:.0f} s")
    for error in report.errors:
        say(f"[red]error[/red] {error}")
    console.print(msgspec.json.encode(msgspec.structs.replace(
        report, sequential=msgspec.structs.replace(report.sequential, turns=[]),
        streaming=msgspec.structs.replace(report.streaming, turns=[]))).decode())
    say(f"recordings in {out}")
    _write_json(Path(args.json) if args.json else out / "bench-pipeline.json", report)
    return 0 if not (report.sequential.failed_calls or report.streaming.failed_calls) else 1


# ---------------------------------------------------------------- theo loadtest


def _load_table(runs) -> Table:
    first = runs[0]
    table = Table("N", "calls", "failed", "dropped", "timed-out steps", "first audio p50/p95/p99 ms",
                  "reply audio p50/p95 ms (filler first, no reply)",
                  "barge-in p50/p95 ms", "jitter p95 ms", "lost", "CPU % p50/p95", "CallActor RSS MB (USS)",
                  title=f"theo loadtest — {first.agent}; first audio = {first.first_audio_what}")
    for r in runs:
        fa, br = r.first_audio, r.barge_in_reaction
        table.add_row(
            str(r.settings.calls), f"{r.calls_completed}/{r.calls_placed}", str(r.failed), str(r.dropped),
            str(r.unanswered_steps), f"{_f(fa.p50)}/{_f(fa.p95)}/{_f(fa.p99)} (n={fa.count})",
            f"{_f(r.reply_audio.p50)}/{_f(r.reply_audio.p95)} (n={r.reply_audio.count}; "
            f"{r.turns_filler_first}, {r.turns_without_reply})",
            f"{_f(br.p50)}/{_f(br.p95)} (n={br.count})", f"{r.caller_jitter_ms.p95}", str(r.caller_lost_frames),
            f"{_f(r.cpu_percent.p50)}/{_f(r.cpu_percent.p95)}",
            f"{_f(r.callactor_rss_mb.p50)} ({_f(r.callactor_uss_mb.p50)})",
        )
    return table


def cmd_loadtest(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.bench.loadtest import LoadtestSettings, LoadtestTick, run_load_sweep, run_loadtest

    settings = LoadtestSettings(
        calls=args.calls, duration_s=args.duration, ramp_s=args.ramp, echo=args.echo, drain_s=args.drain,
        fillers=args.fillers,
        **({"mix": [m.strip() for m in args.mix.split(",") if m.strip()]} if args.mix else {}),
    )
    handles = _start(config, models=not args.echo)
    out = _out_dir(config, "loadtest-echo" if args.echo else "loadtest")
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[calls]}"),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        task = progress.add_task("load", total=settings.duration_s, calls="")

        def tick(t: LoadtestTick) -> None:
            progress.update(
                task, completed=min(t.elapsed_s, t.duration_s),
                description="draining" if t.draining else "placing calls",
                calls=f"active {t.active} · placed {t.placed} · done {t.finished} · failed {t.failed}",
            )

        def quiet(message: str) -> None:
            progress.console.print(message)

        if args.sweep:
            counts = [int(n) for n in args.sweep.split(",")]
            report = asyncio.run(run_load_sweep(config, handles, counts, settings, out, tick, quiet))
            runs = report.runs
        else:
            report = asyncio.run(run_loadtest(config, handles, settings, out, tick, quiet))
            runs = [report]
    console.print(_load_table(runs))
    for r in runs:
        say(f"N={r.settings.calls}: barge-ins talked on {r.barge_ins_talked_on}, cut at end {r.cut_at_end}, "
            f"timed out {r.timed_out}, lost/concealed frames {r.caller_lost_frames}/{r.caller_concealed_frames}, "
            f"CallActor CPU % p50 {r.callactor_cpu_percent.p50}, simulator CPU {r.simulator_cpu_percent}% "
            f"(of one core), {r.cpu_count} CPUs, max concurrent {r.max_concurrent}, {r.wall_s:.0f} s")
        for error in r.errors:
            say(f"  [red]error[/red] {error}")
    if args.sweep:
        knee = report.knee_calls
        say(f"knee (reply-audio p95 ≥ {report.knee_factor:g}x its value at N={runs[0].settings.calls}, "
            f"{report.baseline_p95_ms} ms): " + (f"N = {knee}" if knee else "not reached in this sweep"))
    say(f"recordings in {out}")
    _write_json(Path(args.json) if args.json else out / "loadtest.json", report)
    return 0 if not any(r.failed for r in runs) else 1


# ---------------------------------------------------------------- parsers


def add_parsers(sub: argparse._SubParsersAction, bsub: argparse._SubParsersAction) -> None:
    from theo_ray.bench.load_mix import DEFAULT_MIX

    turns = bsub.add_parser("turns", help="first-audio latency split by segment, and barge-in reaction, at the caller")
    turns.add_argument("--trials", type=int, default=20, help="answered turns, and interruptions (default 20 each)")
    turns.add_argument("--turns-per-call", type=int, default=5)
    turns.add_argument("--barge-ins-per-call", type=int, default=5)
    turns.add_argument("--barge-in-after-ms", type=int, default=800, help="how far into the answer the caller cuts in")
    turns.add_argument("--barge-in-llm", choices=("scripted", "same"), default="scripted",
                       help="LLM of the barge-in calls: the scripted test double (a guaranteed long answer) "
                            "or the configured one")
    turns.add_argument("--fillers", action="store_true", help="keep fillers on (default off: first audio = reply)")
    turns.add_argument("--json", help="where to write the JSON report")
    turns.set_defaults(run=cmd_bench_turns)

    pipeline = bsub.add_parser("pipeline", help="streaming turn loop vs sequential baseline, first audio at the caller")
    pipeline.add_argument("--calls", type=int, default=3, help="calls per pipeline (default 3)")
    pipeline.add_argument("--questions", type=int, default=4, help="questions per call (default 4)")
    pipeline.add_argument("--llm", choices=("configured", "scripted"), default="configured",
                          help="the configured LLM, or the scripted test double with a long multi-sentence answer")
    pipeline.add_argument("--reply-tokens", type=int, default=80,
                          help="both modes answer with exactly this many LLM tokens (default 80, a 2-3 sentence "
                               "answer; 0 = the model decides: the packaged 135M model often just echoes the question)")
    pipeline.add_argument("--json", help="where to write the JSON report")
    pipeline.set_defaults(run=cmd_bench_pipeline)

    load = sub.add_parser("loadtest", help="N concurrent simulated calls; latency, jitter, loss, CPU, RSS")
    load.add_argument("--calls", type=int, default=4, help="concurrent calls (default 4)")
    load.add_argument("--duration", type=float, default=60.0, help="seconds during which calls are placed")
    load.add_argument("--ramp", type=float, default=10.0, help="seconds until all N call slots have started")
    load.add_argument("--mix", help=f"comma-separated scenario names or YAML paths (default {','.join(DEFAULT_MIX)})")
    load.add_argument("--echo", action="store_true", help="echo-mode CallActors, no models (media path only)")
    load.add_argument("--fillers", action="store_true", help="keep fillers on (default off: first audio = reply)")
    load.add_argument("--drain", type=float, default=180.0, help="longest a call in flight at the end may run on")
    load.add_argument("--sweep", help="comma-separated N values: run each, report the knee (p95 doubles)")
    load.add_argument("--json", help="where to write the JSON report")
    load.set_defaults(run=cmd_loadtest)

    from theo_ray.cli import bench_faults, bench_telemetry, bench_turn_taking

    bench_faults.add_parsers(bsub)
    bench_turn_taking.add_parsers(bsub)
    bench_telemetry.add_parsers(bsub)
