"""`theo bench calldata`: call-data sink throughput and the call path's added latency."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import msgspec
from rich.table import Table

from theo_ray.cli.console import console, say
from theo_ray.config import TheoConfig


def cmd_bench_calldata(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.bench.calldata_bench import run_calldata_bench

    es = config.call_data.elasticsearch
    url = args.url if args.url is not None else ""
    report = asyncio.run(run_calldata_bench(args.calls, args.turns, url=url, server_mode=args.server_mode or es.server_mode,
                                            bulk_max_docs=args.bulk_docs, progress=say))
    table = Table("sink", "documents", "seconds", "documents/s", "submit() µs p50", "p99", "max",
                  "event-loop stall ms max", title=f"theo bench calldata ({report.cluster})")
    for f in report.figures:
        table.add_row(f.sink, str(f.documents), f"{f.seconds:.2f}", f"{f.documents_per_s:.0f}", f"{f.submit_us_p50:.1f}",
                      f"{f.submit_us_p99:.1f}", f"{f.submit_us_max:.1f}", f"{f.loop_stall_ms_max:.1f}")
    console.print(table)
    say(f"event-loop stall with no sink working (this machine's load alone): {report.idle_loop_stall_ms_max:.1f} ms max")
    turns, calls = report.counted_on_cluster
    say(f"on the cluster afterwards: {turns} turn documents, {calls} call documents "
        f"(expected {report.calls * report.turns_per_call} and {report.calls})")
    path = Path(args.json or Path(config.paths.output_dir) / "bench-calldata.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2))
    say(f"JSON written to {path}")
    return 0 if (turns, calls) == (report.calls * report.turns_per_call, report.calls) else 1


def add_parsers(bsub: argparse._SubParsersAction) -> None:
    p = bsub.add_parser("calldata", help="call-data sinks: documents/s to the search cluster, submit() latency on the call path")
    p.add_argument("--calls", type=int, default=1000, help="calls submitted (default 1000)")
    p.add_argument("--turns", type=int, default=4, help="turns per call (default 4)")
    p.add_argument("--url", help="a cluster to write to (default: an osmem-server started for the run); "
                                 "indices theo-bench-<time>-* are deleted afterwards")
    p.add_argument("--server-mode", choices=("stack", "serverless"), help="default: call_data.elasticsearch.server_mode")
    p.add_argument("--bulk-docs", type=int, default=500, help="documents per bulk request (default 500)")
    p.add_argument("--json", help="where to write the JSON report")
    p.set_defaults(run=cmd_bench_calldata)
