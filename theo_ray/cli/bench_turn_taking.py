"""`theo bench turn-taking`: the turn-taking corpus over simulated calls, per category and overall."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from theo_ray.cli.console import console, say
from theo_ray.config import TheoConfig


def _start_speech_models(config: TheoConfig):
    """Ray (started or joined) and the STT and TTS deployments (deployed when missing); the
    configured language model is neither prepared nor deployed: the benchmark brings its own."""
    import time

    import msgspec
    from ray import serve

    from theo_ray.models.prepare import prepare_models
    from theo_ray.runtime.ray_cluster import start_or_join
    from theo_ray.runtime.serve_apps import APPS, build_application, running_apps

    prepare_models(msgspec.structs.replace(config, llm=msgspec.structs.replace(config.llm, backend="scripted")), say)
    start_or_join(config.ray, say)
    serve.start(http_options={"host": "127.0.0.1", "port": 8000}, proxy_location="Disabled")
    running = running_apps()
    for kind in ("stt", "tts"):
        app = APPS[kind][0]
        if app in running:
            say(f"using the running {app}")
            continue
        started = time.perf_counter()
        say(f"deploying {app} ({getattr(config, kind).backend}) ...")
        serve.run(build_application(kind, config), name=app, route_prefix=None)
        say(f"  {app} running after {time.perf_counter() - started:.1f} s")
    return tuple(serve.get_deployment_handle(APPS[kind][1], app_name=APPS[kind][0]) for kind in ("stt", "tts"))


def _pct(part: int, whole: int, rate: float | None) -> str:
    return "—" if rate is None else f"{part}/{whole} ({rate:.0%})"


def _pp(p) -> str:
    return "—" if not p.count else f"{p.p50:.0f} / {p.p95:.0f}"


def _met(row, key: str) -> str:
    if key not in row.targets:
        return ""
    return " [green]met[/green]" if row.targets[key] else " [red]missed[/red]"


def report_table(report) -> Table:
    table = Table(
        "group", "calls", "false cut-off", "endpoint wait ms p50 / p95", "false barge-in",
        "backchannel pause ms p50 / p95", "missed barge-in", "barge-in reaction ms p50 / p95", "dead air",
        "answers as expected",
        title=(f"theo bench turn-taking — {report.scenarios} scenarios, voices {', '.join(report.settings.voices)}; "
               f"dead air = mutual silence > {report.dead_air_ms / 1000:g} s"),
    )
    for row in report.rows:
        name = f"[bold]{row.name}[/bold]" if row.name == "overall" else row.name
        table.add_row(
            name, f"{row.calls}" + (f" ({row.failed_calls} failed)" if row.failed_calls else ""),
            _pct(row.cut_offs, row.caller_turns, row.cut_off_rate) + _met(row, "false_cut_off"),
            _pp(row.endpoint_wait),
            _pct(row.backchannels_stopped + row.phantom_stops, row.backchannels + row.phantom_stops,
                 row.false_barge_in_rate) + _met(row, "false_barge_in"),
            _pp(row.backchannel_pause),
            (f"{row.missed_barge_ins}/{row.interruptions}" if row.interruptions else "—") + _met(row, "missed_barge_in"),
            _pp(row.reaction),
            f"{row.dead_air}" + _met(row, "dead_air"),
            f"{row.expected_ok}/{row.expected_total}" if row.expected_total else "—",
        )
    return table


def cmd_bench_turn_taking(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.bench.turn_taking_bench import CATEGORIES, TurnTakingBenchSettings, run_turn_taking_bench
    from theo_ray.cli.bench_common import _out_dir, _write_json
    from theo_ray.sim.espeak_voice import CALLER_VOICES

    voices = [v.strip() for v in args.voices.split(",") if v.strip()]
    categories = [c.strip() for c in args.categories.split(",") if c.strip()] if args.categories else []
    unknown = [v for v in voices if v not in CALLER_VOICES] + [c for c in categories if c not in CATEGORIES]
    if unknown or not voices:
        say(f"[red]unknown voice(s)/category(ies) {unknown}[/red]; voices: {', '.join(CALLER_VOICES)}; "
            f"categories: {', '.join(CATEGORIES)}")
        return 2
    settings = TurnTakingBenchSettings(voices=voices, categories=categories, limit=args.limit,
                                       per_category=args.per_category, impaired=not args.no_impaired)
    if args.rejudge:
        from theo_ray.bench.turn_taking_bench import describe_call, rejudge

        report_path = Path(args.rejudge)
        out = Path(args.recordings) if args.recordings else report_path.parent
        report = rejudge(config, report_path, out)
        for i, call in enumerate(report.calls, start=1):
            say(escape(f"[{i}/{len(report.calls)}] {describe_call(call)}"))
    else:
        stt, tts = _start_speech_models(config)
        out = _out_dir(config, "bench-turn-taking")
        say(f"recordings in {out}")
        report = asyncio.run(run_turn_taking_bench(config, stt, tts, settings, out, lambda m: say(escape(m))))
    console.print(report_table(report))
    overall = report.row("overall")
    if overall is not None:
        say("targets: false cut-off ≤ 5 %, false barge-in ≤ 5 %, missed barge-in 0, dead air 0 — "
            + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in overall.targets.items()))
        say(f"also: agent audio that cut in lasted p50 {_pp(overall.cut_in).split(' / ')[0]} ms; agent "
            f"acknowledgements inside caller turns {overall.agent_acks}; "
            f"calls whose caller audio went out 100 ms or more late (busy machine) {overall.stalled_calls}; "
            f"stops with no caller sound {overall.phantom_stops}, barge-ins "
            f"that found the agent silent {overall.not_over_agent}, noise answered {overall.noise_answered}/"
            f"{overall.noise_utterances}, longest mutual silence {overall.longest_silence_ms / 1000:.1f} s; "
            f"{report.wall_s / 60:.1f} min")
    for error in report.errors:
        say(f"[red]error[/red] {error}")
    default = out / ("bench-turn-taking.rejudged.json" if args.rejudge else "bench-turn-taking.json")
    _write_json(Path(args.json) if args.json else default, report)
    return 0 if not (overall and overall.failed_calls) else 1


def add_parsers(bsub: argparse._SubParsersAction) -> None:
    from theo_ray.bench.turn_taking_bench import CATEGORIES

    p = bsub.add_parser("turn-taking", help="the turn-taking corpus (cut-offs, backchannels, barge-ins, dead air) "
                                            "with two caller voices and an impaired line")
    p.add_argument("--voices", default="pm_alex,espeak",
                   help="caller voices, comma separated: Kokoro pm_alex/pf_dora/pm_santa, espeak (default pm_alex,espeak)")
    p.add_argument("--categories", help=f"comma separated (default all: {','.join(CATEGORIES)})")
    p.add_argument("--limit", type=int, default=0, help="at most this many scenarios (0: all)")
    p.add_argument("--per-category", type=int, default=0,
                   help="at most this many scenarios of each category, the impaired subset's first (0: all)")
    p.add_argument("--no-impaired", action="store_true", help="skip the impaired-line (loss, jitter) subset")
    p.add_argument("--json", help="where to write the JSON report")
    p.add_argument("--rejudge", metavar="REPORT_JSON",
                   help="judge a finished run again from its saved recordings and records (no calls placed)")
    p.add_argument("--recordings", help="with --rejudge: the run's recordings folder (default: the report's folder)")
    p.set_defaults(run=cmd_bench_turn_taking)
