"""`theo bench media`: concurrent loopback SIP calls into echo CallActors (no models).

Registered under `theo bench` by `add_parsers(bsub)`; prints a table and the JSON report.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import msgspec
from rich.table import Table

from theo_ray.cli.console import console, say
from theo_ray.config import TheoConfig


def _table(runs, title: str) -> Table:
    table = Table(
        "calls", "send err ms p50", "p99 (CallActor)", "p99 (caller)", "lost", "late", "concealed",
        "CPU %/call", "RSS MB/actor", "INVITE→200 ms p50 (p99)", "holds", title=title,
    )
    for r in runs:
        table.add_row(
            str(r.calls), f"{r.send_interval_error_p50_ms:.2f}", f"{r.send_interval_error_p99_ms:.2f}",
            f"{r.caller_send_interval_error_p99_ms:.2f}", str(r.frames_lost), str(r.frames_late),
            str(r.frames_concealed), f"{r.cpu_percent_per_call:.1f}",
            f"{r.rss_mb_per_call_actor:.0f} (max {r.rss_mb_per_call_actor_max:.0f})",
            f"{r.invite_to_200_ms_p50:.1f} ({r.invite_to_200_ms_p99:.1f})", "yes" if r.holds else "no",
        )
    return table


def cmd_bench_media(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.bench.media_bench import (
        MAX_BENCH_CALLS,
        SEND_ERROR_BOUND_MS,
        SWEEP_CALLS,
        run_media_bench,
        run_media_sweep,
    )
    from theo_ray.errors import TheoError
    from theo_ray.runtime.ray_cluster import start_or_join

    if not 1 <= args.calls <= MAX_BENCH_CALLS:
        raise TheoError(f"--calls must be 1..{MAX_BENCH_CALLS}")
    start_or_join(config.ray, say)
    title = f"theo bench media ({args.codec}, {args.seconds:.0f} s per run, echo CallActors)"
    report: msgspec.Struct
    if args.sweep:
        say(f"sweeping N = {', '.join(map(str, SWEEP_CALLS))} ...")
        report = asyncio.run(run_media_sweep(config, args.seconds, args.codec, say=say))
        console.print(_table(report.runs, title))
        for n, why in report.failed.items():
            say(f"N = {n}: {why}")
        say(f"largest N with p99 send-interval error <= {SEND_ERROR_BOUND_MS:.0f} ms and no lost or "
            f"concealed frame: {report.largest_holding_calls}")
    else:
        say(f"placing {args.calls} concurrent call(s) ...")
        try:
            report = asyncio.run(run_media_bench(config, args.calls, args.seconds, args.codec, say))
        except (TimeoutError, RuntimeError) as exc:
            raise TheoError(f"the benchmark's calls failed: {exc}") from exc
        console.print(_table([report], title))
    console.print(msgspec.json.encode(report).decode())
    path = Path(args.json or Path(config.paths.output_dir) / "bench-media.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2))
    say(f"JSON written to {path}")
    return 0


def add_parsers(bsub: argparse._SubParsersAction) -> None:
    """Register `media` on the `theo bench` subparsers."""
    media = bsub.add_parser(
        "media",
        help="N concurrent loopback SIP calls into echo CallActors: send-interval error, loss, CPU, "
             "RSS, INVITE→200 OK",
    )
    media.add_argument("--calls", type=int, default=4, help="concurrent calls (1..64; the plane gets one gateway shard per 4 calls)")
    media.add_argument("--seconds", type=float, default=10.0, help="measuring window per run")
    media.add_argument("--codec", default="PCMU", choices=["PCMU", "PCMA", "G722"])
    media.add_argument("--sweep", action="store_true",
                       help="run N = 1, 2, 4, 8, 16 and report the largest N that holds")
    media.add_argument("--json", help="where to write the JSON report")
    media.set_defaults(run=cmd_bench_media)
