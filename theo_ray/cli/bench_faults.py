"""`theo bench faults`: faults struck on live simulated calls, one row per fault."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from rich.table import Table

from theo_ray.cli.console import console, say
from theo_ray.config import TheoConfig


def cmd_bench_faults(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.bench.faults import FAULTS
    from theo_ray.bench.faults_bench import run_faults_bench
    from theo_ray.cli.bench_common import _f, _out_dir, _start, _write_json

    names = args.faults.split(",") if args.faults else list(FAULTS)
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        say(f"[red]unknown fault(s) {unknown}[/red]; known: {', '.join(FAULTS)}")
        return 2
    handles = _start(config)
    out = _out_dir(config, "bench-faults")
    say(f"recordings in {out}")
    report = asyncio.run(run_faults_bench(config, handles, names, args.repeats, out, say))
    table = Table("fault", "struck", "gap ms p50/p95", "longest silence ms p50/p95", "outcome",
                  "recovery ms p50", "the caller heard first", title=f"theo bench faults ({report.wall_s:.0f} s)")
    for row in report.rows:
        table.add_row(
            row.fault, f"{row.struck}/{row.repeats}", f"{_f(row.gap_ms.p50)} / {_f(row.gap_ms.p95)}",
            f"{_f(row.longest_silence_ms.p50)} / {_f(row.longest_silence_ms.p95)}",
            ", ".join(f"{k} {v}" for k, v in row.outcomes.items()), _f(row.recovery_ms.p50), row.heard[:60],
        )
    console.print(table)
    _write_json(Path(args.json) if args.json else out / "bench-faults.json", report)
    return 0 if all(row.struck == row.repeats for row in report.rows) else 1


def add_parsers(bsub: argparse._SubParsersAction) -> None:
    from theo_ray.bench.faults import FAULTS

    faults = bsub.add_parser("faults", help="faults struck on live simulated calls: what the caller hears, recovery")
    faults.add_argument("--faults", help=f"comma-separated (default all: {','.join(FAULTS)})")
    faults.add_argument("--repeats", type=int, default=3, help="calls per fault (default 3)")
    faults.add_argument("--json", help="where to write the JSON report")
    faults.set_defaults(run=cmd_bench_faults)
