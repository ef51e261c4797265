"""`theo bench sip-torture`: bounded SIPp attacks on a private plane, one row per attack."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from rich.table import Table

from theo_ray.cli.console import console, say
from theo_ray.config import TheoConfig


def _finals(finals: dict[str, int]) -> str:
    return " ".join(f"{code}×{n}" for code, n in finals.items()) or "—"


def _after(call) -> str:
    if not call.answered:
        return f"[red]not answered[/red] {call.error[:40]}"
    if not call.greeting_heard:
        return "[red]answered, no greeting[/red]"
    return f"{call.answer_ms:.0f} / {call.first_audio_ms:.0f}"


def cmd_bench_sip_torture(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.bench.sim_calls import caller_voice
    from theo_ray.bench.sip_torture import (
        attacks,
        remove_scripted_model,
        run_torture_bench,
        torture_handles,
    )
    from theo_ray.bench.sipp_runner import sipp_path
    from theo_ray.cli.bench_common import _out_dir, _start, _write_json

    if sipp_path() is None:
        say("[red]sipp is not installed[/red]: `apt-get install sip-tester` (scripts/setup.sh installs it)")
        return 2
    catalogue = attacks(args.scale)
    names = args.attacks.split(",") if args.attacks else list(catalogue)
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        say(f"[red]unknown attack(s) {unknown}[/red]; known: {', '.join(catalogue)}")
        return 2
    _start(config, models=False)
    out = _out_dir(config, "bench-sip-torture")
    say(f"SIPp traces and the normal calls' recordings in {out}")
    handles = torture_handles(config, say)
    try:
        report = asyncio.run(run_torture_bench(config, handles, names, out, caller_voice(config), args.scale, say))
    finally:
        remove_scripted_model()
    table = Table("attack", "sent", "answered by code", "crashes", "leaks calls/actors/sockets", "counted by the gateway",
                  "normal call after: answer / greeting ms",
                  title=f"theo bench sip-torture (scale {args.scale:g}, {report.wall_s:.0f} s)")
    base = report.baseline
    table.add_row("(baseline, before any attack)", "—", "—", "—", "—", "—", _after(base))
    for row in report.rows:
        table.add_row(
            row.attack, str(row.sent), _finals(row.finals), str(row.crashes),
            f"{row.leaked_calls}/{row.leaked_actors}/{row.leaked_sockets}",
            _finals(row.refusals).replace("×", " "), _after(row.after),
        )
    console.print(table)
    for row in report.rows:
        for error in row.errors:
            say(f"  {row.attack}: {error}")
    _write_json(Path(args.json) if args.json else out / "bench-sip-torture.json", report)
    whole = all(r.crashes == 0 and not (r.leaked_calls or r.leaked_actors) and r.after.greeting_heard for r in report.rows)
    return 0 if whole else 1


def add_parsers(bsub: argparse._SubParsersAction) -> None:
    torture = bsub.add_parser("sip-torture", help="bounded SIPp attacks on a private plane: answers, crashes, leaks, "
                                                  "the normal call right after")
    torture.add_argument("--attacks", help="comma-separated (default all; `--attacks x` lists them)")
    torture.add_argument("--scale", type=float, default=1.0, help="multiplies every attack's call count (default 1)")
    torture.add_argument("--json", help="where to write the JSON report")
    torture.set_defaults(run=cmd_bench_sip_torture)
