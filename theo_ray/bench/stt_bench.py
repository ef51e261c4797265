"""`theo bench stt`: how well the STT model understands callers, per voice, line and setting.

The corpus (`data/stt_corpus.yaml`, judged by `stt_judge.py`) is spoken by each voice and
carried by each line condition (`stt_render.py`), then transcribed in process by Theo's own
`FasterWhisperBackend` under each decoding setting: one transcription at a time, with word
timestamps as a call asks for them, the settings interleaved utterance by utterance so that
whatever else the machine is doing weighs on all of them alike. Per setting × voice ×
condition: WER, the share of utterances whose meaning is lost (a key missed), and the
STT-final latency (the whole utterance's transcription time: what the caller waits for
between the end of the endpointing and the language model's start) p50/p95.

A setting is a `+`-joined list of presets and `key=value` overrides of `[stt]` on top of the
config: "current", "beam5+hotwords", "window_min_s=30", ... Every setting gets the corpus's
domain terms (the benchmark company's name and plans) after `stt.domain_terms`, as an operator
would configure them; `stt.vocabulary` decides whether they reach the decoder.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import numpy as np

from theo_ray.bench.stats import pct
from theo_ray.bench.stt_judge import Corpus, CorpusUtterance, Judgement, judge, load_corpus, wer
from theo_ray.bench.stt_render import DEFAULT_CONDITIONS, DEFAULT_VOICES, KOKORO_VOICES, LineRenderer, check_names
from theo_ray.config import SpeechToTextSettings, TheoConfig
from theo_ray.conversation.readback import dictated_runs
from theo_ray.conversation.stt_hint import hint_for

PRESETS: dict[str, dict] = {
    "current": {},
    "greedy": {"beam_size": 1},
    "beam3": {"beam_size": 3},
    "beam5": {"beam_size": 5},
    "window30": {"window_min_s": 30.0},
    "window15": {"window_min_s": 15.0},
    "window10": {"window_min_s": 10.0},
    "vad": {"vad_trim": True},
    "fallback": {"temperature_fallback": [0.2, 0.4, 0.6, 0.8, 1.0]},
    "hotwords": {"vocabulary": "hotwords"},
    "prompt": {"vocabulary": "prompt"},
    "novocab": {"vocabulary": "off"},
    # Not [stt] keys: each utterance's `asked` (what the agent just asked) sent as the hint —
    # as a call sends it (the question, and the digits cue after a question asking for
    # digits: theo_ray/conversation/stt_hint.py), or "asked": the bare question.
    "hints": {},
    "asked": {},
}
HINT_PRESETS = ("hints", "asked")


def _value(raw: str):
    import json

    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse_setting(name: str) -> tuple[dict, str]:
    """A setting's `[stt]` overrides and the hints it sends ("", "hints" or "asked");
    ValueError if unknown."""
    overrides: dict = {}
    hints = ""
    for part in filter(None, (p.strip() for p in name.split("+"))):
        if "=" in part:
            key, raw = part.split("=", 1)
            if key not in SpeechToTextSettings.__struct_fields__:
                raise ValueError(f"{key!r} is not an [stt] key")
            overrides[key] = _value(raw)
        elif part in PRESETS:
            overrides.update(PRESETS[part])
            hints = part if part in HINT_PRESETS else hints
        else:
            raise ValueError(f"unknown setting {part!r}: a preset ({', '.join(PRESETS)}) or key=value")
    return overrides, hints


def settings_for(config: TheoConfig, corpus: Corpus, name: str) -> tuple[SpeechToTextSettings, str]:
    overrides, hints = parse_setting(name)
    terms = list(dict.fromkeys([*config.stt.domain_terms, *corpus.domain_terms]))
    raw = msgspec.to_builtins(config.stt) | {"domain_terms": terms} | overrides
    return msgspec.convert(raw, SpeechToTextSettings), hints


class Transcript(msgspec.Struct):
    id: str
    voice: str
    condition: str
    setting: str
    text: str
    ms: float
    errors: int
    reference_words: int
    missed: list[str]
    redecoded: bool
    loop_passed_on: bool
    min_avg_logprob: float | None
    min_word_probability: float | None
    # The least sure word of the dictated digit runs (readback.py), None without one: what
    # `conversation.readback_word_probability` is compared with.
    digit_probability: float | None = None


class Cell(msgspec.Struct):
    setting: str
    voice: str
    condition: str
    utterances: int
    wer: float
    meaning_lost: float  # share of utterances with a key missed
    ms_p50: float
    ms_p95: float
    loops_redecoded: int
    loops_passed_on: int


class SttBenchReport(msgspec.Struct):
    model: str
    cpu_threads: int
    corpus_utterances: int
    settings: dict[str, dict]
    voices: list[str]
    conditions: list[str]
    cells: list[Cell]
    totals: list[Cell]  # per setting, every voice and condition together ("*")
    transcripts: list[Transcript]
    wall_s: float


def summarise(setting: str, voice: str, condition: str, rows: list[Transcript]) -> Cell:
    judgements = [Judgement(t.errors, t.reference_words, t.missed) for t in rows]
    times = [t.ms for t in rows]
    return Cell(setting, voice, condition, len(rows), wer(judgements),
                sum(j.meaning_lost for j in judgements) / len(rows) if rows else 0.0,
                pct(times, 50), pct(times, 95), sum(t.redecoded for t in rows), sum(t.loop_passed_on for t in rows))


class _Decoder(msgspec.Struct):
    """One setting: its backend (sharing loaded weights with the settings of the same window)."""

    name: str
    backend: object
    hints: str  # "", "hints" (as a call sends them) or "asked" (the bare question)


def _decoders(config: TheoConfig, corpus: Corpus, names: list[str]) -> list[_Decoder]:
    from theo_ray.deployments.backends.faster_whisper_stt import FasterWhisperBackend

    loaded: dict[tuple, object] = {}
    out = []
    for name in names:
        settings, hints = settings_for(config, corpus, name)
        key = (settings.model, settings.device, settings.compute_type, settings.cpu_threads,
               settings.window_min_s, settings.window_margin_s)
        if key not in loaded:
            loaded[key] = FasterWhisperBackend(settings, Path(config.paths.model_cache).expanduser())
        backend = copy.copy(loaded[key])  # same weights and window, this setting's decoding
        backend.settings = settings
        backend.loops_redecoded = 0
        out.append(_Decoder(name, backend, hints))
    return out


def select(corpus: Corpus, ids: list[str] | None = None, kinds: list[str] | None = None,
           per_kind: int | None = None) -> list[CorpusUtterance]:
    """The corpus's utterances with these ids / of these kinds, the first `per_kind` of each kind."""
    chosen = [u for u in corpus.utterances if (not ids or u.id in ids) and (not kinds or u.kind in kinds)]
    if not per_kind:
        return chosen
    counts: dict[str, int] = {}
    out = []
    for u in chosen:
        counts[u.kind] = counts.get(u.kind, 0) + 1
        if counts[u.kind] <= per_kind:
            out.append(u)
    return out


def run_stt_bench(
    config: TheoConfig,
    settings: list[str],
    voices: list[str] = list(DEFAULT_VOICES),
    conditions: list[str] = list(DEFAULT_CONDITIONS),
    utterances: list[CorpusUtterance] | None = None,
    progress: Callable[[str], None] = print,
    checkpoint: Callable[[SttBenchReport], None] | None = None,
) -> SttBenchReport:
    from theo_ray.deployments.backends.faster_whisper_stt import looks_like_a_loop, to_segment

    started = time.perf_counter()
    check_names(voices, conditions)
    corpus = load_corpus()
    utterances = corpus.utterances if utterances is None else utterances
    decoders = _decoders(config, corpus, settings)  # parses every setting before any work
    renderer = LineRenderer(config.model_cache() / "stt-bench", config.model_cache())
    warm = asyncio.run(renderer.render(voices[0], conditions[0], utterances[0].text)).astype(np.float32) / 32768.0
    for d in decoders:
        d.backend.transcribe_blocking(warm, d.backend.settings.language, "", True)
        d.backend.loops_redecoded = 0
    transcripts: list[Transcript] = []
    for voice in voices:
        for condition in conditions:
            audios = asyncio.run(_render_all(renderer, voice, condition, utterances))
            for utt, audio in zip(utterances, audios):
                for d in decoders:
                    hint = _hint(utt.asked, d.hints)
                    t0 = time.perf_counter()
                    segments, redecoded = d.backend.transcribe_blocking(audio, d.backend.settings.language, "", True, hint)
                    ms = (time.perf_counter() - t0) * 1000
                    text = " ".join(s.text.strip() for s in segments).strip()
                    j = judge(utt.text, utt.keys, text)
                    probs = [float(w.probability) for s in segments for w in (s.words or [])]
                    runs = dictated_runs([w for s in segments for w in to_segment(s).words], config.conversation.readback_min_digits)
                    transcripts.append(Transcript(
                        utt.id, voice, condition, d.name, text, round(ms, 1), j.errors, j.reference_words, j.missed,
                        redecoded, looks_like_a_loop(text, len(audio) / 16000, d.backend.settings.loop_words_per_s),
                        min((float(s.avg_logprob) for s in segments), default=None), min(probs, default=None),
                        min((r.probability for r in runs), default=None)))
            cells = [summarise(d.name, voice, condition, [t for t in transcripts if (t.setting, t.voice, t.condition) == (d.name, voice, condition)]) for d in decoders]
            progress(f"  {voice} {condition}: " + "; ".join(f"{c.setting} WER {c.wer:.3f} lost {c.meaning_lost:.0%} "
                                                           f"p50 {c.ms_p50:.0f} ms" for c in cells))
            if checkpoint is not None:  # what is done so far, should the run be cut short
                checkpoint(_report(config, decoders, utterances, transcripts, started))
    return _report(config, decoders, utterances, transcripts, started)


def _report(config: TheoConfig, decoders: list[_Decoder], utterances: list[CorpusUtterance],
            transcripts: list[Transcript], started: float) -> SttBenchReport:
    voices = list(dict.fromkeys(t.voice for t in transcripts))
    conditions = list(dict.fromkeys(t.condition for t in transcripts))
    cells = [summarise(d.name, v, c, rows)
             for d in decoders for v in voices for c in conditions
             if (rows := [t for t in transcripts if (t.setting, t.voice, t.condition) == (d.name, v, c)])]
    totals = [summarise(d.name, "*", "*", [t for t in transcripts if t.setting == d.name]) for d in decoders]
    return SttBenchReport(decoders[0].backend.model_path, config.stt.cpu_threads, len(utterances),
                          {d.name: parse_setting(d.name)[0] for d in decoders}, voices, conditions, cells, totals,
                          transcripts, round(time.perf_counter() - started, 1))


def _hint(asked: str, mode: str) -> str:
    if not asked or not mode:
        return ""
    return asked if mode == "asked" else hint_for(asked).text


async def _render_all(renderer: LineRenderer, voice: str, condition: str, utterances: list[CorpusUtterance]) -> list[np.ndarray]:
    return [(await renderer.render(voice, condition, u.text)).astype(np.float32) / 32768.0 for u in utterances]


def headline(report: SttBenchReport, voices=KOKORO_VOICES, condition: str = "g711-clean") -> dict[str, Cell]:
    """Per setting: the Kokoro voices on a clean G.711 line together (the issue's goal)."""
    out = {}
    for name in report.settings:
        rows = [t for t in report.transcripts if t.setting == name and t.voice in voices and t.condition == condition]
        if rows:
            out[name] = summarise(name, "+".join(v for v in voices if v in report.voices), condition, rows)
    return out
