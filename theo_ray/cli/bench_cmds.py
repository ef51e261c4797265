"""`theo bench ...`: benchmarks that print tables and write JSON."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import msgspec
from rich.table import Table

from theo_ray.cli.bench_common import _write_json
from theo_ray.cli.console import console, say
from theo_ray.config import TheoConfig


def cmd_bench_models(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.bench.models_bench import run_models_bench
    from theo_ray.runtime.ray_cluster import start_or_join
    from theo_ray.runtime.serve_apps import ensure_models_deployed

    start_or_join(config.ray, say)
    handles = ensure_models_deployed(config, say)
    say(f"running {args.trials} trials per model ...")
    report = asyncio.run(run_models_bench(handles, args.trials))
    table = Table("model", "backend", "load s", "first chunk/token ms p50 (p95)", "RTF p50", "tokens/s p50",
                  "cancel→abort ms p50 (max)", title="theo bench models")
    for kind in ("stt", "llm", "tts"):
        f = getattr(report, kind)
        table.add_row(
            f"{kind}: {Path(f.model).name}", f.backend, f"{f.load_s:.1f}",
            f"{f.first_chunk_ms_p50:.0f} ({f.first_chunk_ms_p95:.0f})",
            "-" if kind == "llm" else f"{f.rtf_p50:.2f}",
            f"{f.tokens_per_s_p50:.1f}" if kind == "llm" else "-",
            f"{f.cancel_to_abort_ms_p50:.1f} ({f.cancel_to_abort_ms_max:.1f})" if kind == "llm" else "-",
        )
    console.print(table)
    heard = report.voice_intelligibility
    if heard is not None and heard.wer is not None:
        say(f"agent voice intelligibility over G.711 (the STT model's WER on the TTS audio): "
            f"[bold]{heard.wer:.1%}[/bold] ({heard.errors} errors in {heard.reference_words} words; target ≤ 10 %)")
    elif heard is not None:
        say(f"agent voice intelligibility: ? ({heard.reason})")
    console.print(msgspec.json.encode(report).decode())
    _write_json(Path(args.json or Path(config.paths.output_dir) / "bench-models.json"), report)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="benchmarks (print figures, write JSON)")
    bsub = bench.add_subparsers(dest="bench_cmd", required=True)
    models = bsub.add_parser("models", help="load time, RTF, first chunk/token, tokens/s, cancel-to-abort")
    models.add_argument("--trials", type=int, default=5)
    models.add_argument("--json", help="where to write the JSON report")
    models.set_defaults(run=cmd_bench_models)
    from theo_ray.cli import bench_stt

    bench_stt.add_parsers(bsub)
    from theo_ray.cli import bench_media

    bench_media.add_parsers(bsub)
    from theo_ray.cli import bench_calldata

    bench_calldata.add_parsers(bsub)
    from theo_ray.cli import bench_sip_torture

    bench_sip_torture.add_parsers(bsub)
    return bsub
