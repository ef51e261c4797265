"""`theo bench calldata` end to end on a small run: every document reaches osmem-server
once, and the call path's submit() returns in microseconds."""

from __future__ import annotations

from theo_ray.bench.calldata_bench import run_calldata_bench
from theo_ray.cli.main import build_parser


async def test_the_benchmark_delivers_every_document_once_and_submit_costs_microseconds():
    report = await run_calldata_bench(calls=30, turns=3, progress=lambda _line: None)
    assert report.cluster == "osmem-server" and report.counted_on_cluster == (90, 30)
    es, log = report.figures
    assert (es.sink, es.documents, log.sink, log.documents) == ("elasticsearch", 120, "jsonl", 120)
    assert es.documents_per_s > 0 and es.submit_us_p50 < 1000.0  # ~0: nothing but a queue put
    assert report.idle_loop_stall_ms_max >= 0.0


def test_the_command_is_registered():
    args = build_parser().parse_args(["bench", "calldata", "--calls", "5", "--turns", "2"])
    assert (args.calls, args.turns, args.url) == (5, 2, None) and args.run.__name__ == "cmd_bench_calldata"
