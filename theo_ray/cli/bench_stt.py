"""`theo bench stt` (and its old name `theo bench stt-window`): caller understanding."""

from __future__ import annotations

import argparse
from pathlib import Path

import msgspec

from rich.table import Table

from theo_ray.cli.console import console, say
from theo_ray.config import TheoConfig


def _csv(raw: str | None) -> list[str]:
    return [x.strip() for x in (raw or "").split(",") if x.strip()]


def _print_report(report, window_table: bool) -> None:
    from theo_ray.bench.stt_bench import headline

    if len(report.voices) > 1 or len(report.conditions) > 1:
        for name in report.settings:
            table = Table("voice", *report.conditions, title=f"setting {name}: WER · meaning lost · STT-final ms p50/p95")
            for voice in report.voices:
                cells = {c.condition: c for c in report.cells if c.setting == name and c.voice == voice}
                table.add_row(voice, *(f"{cells[c].wer:.1%} · {cells[c].meaning_lost:.0%} · "
                                       f"{cells[c].ms_p50:.0f}/{cells[c].ms_p95:.0f}" for c in report.conditions))
            console.print(table)
    full = next((t for t in report.totals if report.settings[t.setting].get("window_min_s") == 30.0), None)
    table = Table("setting", "transcriptions", "WER", "meaning lost", "ms p50", "ms p95",
                  *(("speed-up vs 30 s",) if window_table else ()), "loops re-decoded", "loops passed on",
                  title="theo bench stt: every voice and condition run")
    for t in report.totals:
        table.add_row(t.setting, str(t.utterances), f"{t.wer:.1%}", f"{t.meaning_lost:.1%}", f"{t.ms_p50:.0f}",
                      f"{t.ms_p95:.0f}", *((f"{full.ms_p50 / t.ms_p50:.2f}x" if full else "-",) if window_table else ()),
                      str(t.loops_redecoded), str(t.loops_passed_on))
    console.print(table)
    heads = headline(report)
    if heads:
        table = Table("setting", "voices", "WER", "meaning lost", "ms p50", "ms p95",
                      title="Kokoro voices, clean G.711 (goal: WER ≤ 10 %)")
        for h in heads.values():
            table.add_row(h.setting, h.voice, f"{h.wer:.1%}", f"{h.meaning_lost:.1%}", f"{h.ms_p50:.0f}", f"{h.ms_p95:.0f}")
        console.print(table)


def cmd_bench_stt(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.bench.stt_bench import parse_setting, run_stt_bench, select
    from theo_ray.bench.stt_judge import load_corpus
    from theo_ray.bench.stt_render import DEFAULT_CONDITIONS, DEFAULT_VOICES, check_names
    from theo_ray.cli.bench_common import _write_json

    settings = _csv(args.settings) + [f"window_min_s={float(w):g}" for w in _csv(args.windows)]
    voices = _csv(args.voices) or list(DEFAULT_VOICES)
    conditions = _csv(args.conditions) or list(DEFAULT_CONDITIONS)
    try:
        for name in settings:
            parse_setting(name)
        check_names(voices, conditions)
    except ValueError as exc:
        say(str(exc))
        return 2
    utterances = select(load_corpus(), _csv(args.ids), _csv(args.kinds), args.per_kind)
    if not utterances:
        say("no utterance of the corpus matches --ids/--kinds")
        return 2
    say(f"{len(utterances)} utterances × {len(voices)} voices × {len(conditions)} conditions × "
        f"{len(settings)} settings, in process, one transcription at a time (a shared machine: "
        f"latency is what it measured, with whatever else ran) ...")
    out = Path(args.json or Path(config.paths.output_dir) / "bench-stt.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial.json")
    report = run_stt_bench(config, settings or ["current"], voices, conditions, utterances, progress=say,
                           checkpoint=lambda r: partial.write_bytes(msgspec.json.encode(r)))
    _print_report(report, window_table=bool(args.windows))
    say(f"model {report.model}, cpu_threads {report.cpu_threads}, {report.wall_s:.0f} s")
    _write_json(out, report)
    partial.unlink(missing_ok=True)
    return 0


def add_parsers(bsub: argparse._SubParsersAction) -> None:
    for name, help_text in (
        ("stt", "caller understanding: WER, meaning lost and STT-final latency per voice, line condition and setting"),
        ("stt-window", "the old name: the encoder window section of `theo bench stt` (one voice, clean G.711)"),
    ):
        window = name == "stt-window"
        p = bsub.add_parser(name, help=help_text)
        p.add_argument("--settings", default="" if window else "current",
                       help="comma-separated settings, each presets and [stt] key=value joined by '+' "
                            "(presets: current, beam3, beam5, window30, window15, vad, fallback, hotwords, prompt, "
                            "novocab, hints: the agent's question as a call sends it, asked: the bare question), "
                            "e.g. current,beam5+hotwords")
        p.add_argument("--windows", default="30,15,10" if window else "",
                       help="add one setting per encoder window (stt.window_min_s, seconds; 30 = Whisper's own)")
        p.add_argument("--voices", default="pm_alex" if window else "",
                       help="comma-separated: pf_dora, pm_alex, pm_santa, espeak:pt-br, espeak:pt-br+f3 (default: all)")
        p.add_argument("--conditions", default="g711-clean" if window else "",
                       help="comma-separated {g711,g722}-{clean,snr25,snr15,loss2} (default: all eight)")
        p.add_argument("--ids", help="only these utterance ids (comma-separated)")
        p.add_argument("--kinds", help="only these kinds (question, number, dictation, address, name, date, money, "
                                       "plan, correction, short, hesitation)")
        p.add_argument("--per-kind", type=int, default=None, help="only the first N utterances of each kind")
        p.add_argument("--json", help="where to write the JSON report (every transcript included)")
        p.set_defaults(run=cmd_bench_stt)
