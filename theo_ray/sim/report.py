"""A readable report of one simulated call: transcript, per-turn latency table, quality metrics
and the scenario's checks, rendered with ``rich`` from a :class:`CallSummary`.

The latency table shows the caller-side figure (end of caller speech -> first agent audio, from
the recording) and, when Theo's trace is available, its split into internal spans
(:class:`SpanSplit`, filled by whoever reads the call's trace).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import msgspec
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from theo_ray.sim.conversation_metrics import CallSummary, TurnRecord


class SpanSplit(msgspec.Struct, frozen=True):
    """Where one caller turn's latency went inside Theo, in ms, from the call's trace.

    ``turn`` is the caller turn index (CallSummary.turns[].index). Each figure is that stage's
    own duration; None when the trace lacks the span.
    """

    turn: int
    # Caller's last voiced frame -> the endpointer decides the turn is over.
    endpointing_wait_ms: float | None = None
    # Turn decision -> final transcript.
    stt_ms: float | None = None
    # LLM request -> first token / first complete sentence.
    llm_first_token_ms: float | None = None
    llm_first_sentence_ms: float | None = None
    # First sentence sent to TTS -> first audio chunk back.
    tts_first_chunk_ms: float | None = None
    # First audio chunk -> first RTP packet of the reply sent.
    first_rtp_ms: float | None = None
    trace_id: str = ""


_SPAN_COLUMNS = (
    ("endpointing_wait_ms", "endpoint"),
    ("stt_ms", "STT"),
    ("llm_first_token_ms", "LLM 1st tok"),
    ("llm_first_sentence_ms", "LLM 1st sent"),
    ("tts_first_chunk_ms", "TTS 1st chunk"),
    ("first_rtp_ms", "1st RTP"),
)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def _clock(ms: float) -> str:
    return f"{ms / 1000:6.2f}s"


def transcript_table(summary: CallSummary) -> Table:
    table = Table(title=f"Transcript — {summary.scenario or summary.call_id}", show_lines=False, expand=False)
    table.add_column("at", justify="right", style="dim", no_wrap=True)
    table.add_column("who", no_wrap=True)
    table.add_column("said", overflow="fold")
    if summary.greeting_text:
        start = summary.agent_turns[0].start_ms if summary.agent_turns else 0.0
        table.add_row(_clock(start), Text("Theo", style="cyan"), Text(summary.greeting_text))
    for turn in summary.turns:
        table.add_row(_clock(turn.caller_start_ms), Text(_caller_tag(turn), style="green"), Text(turn.caller_text or "…"))
        if turn.agent_text:
            at = turn.caller_end_ms + (turn.first_audio_ms or 0.0)
            table.add_row(_clock(at), Text("Theo", style="cyan"), Text(turn.agent_text))
    return table


def _caller_tag(turn: TurnRecord) -> str:
    tag = "Caller"
    if turn.kind == "barge_in":
        tag += " (interrupts)"
    elif turn.kind == "backchannel":
        tag += " (backchannel)"
    return tag


def latency_table(summary: CallSummary, spans: Sequence[SpanSplit] = ()) -> Table:
    by_turn = {s.turn: s for s in spans}
    table = Table(title="Per-turn latency (ms): caller side, split by Theo's spans")
    table.add_column("turn", justify="right")
    table.add_column("caller said", max_width=32, overflow="ellipsis", no_wrap=True)
    table.add_column("first audio", justify="right")
    table.add_column("first content", justify="right", style="bold")
    table.add_column("barge-in", justify="right")
    if by_turn:
        for _, title in _SPAN_COLUMNS:
            table.add_column(title, justify="right")
    for turn in summary.turns:
        barge = ""
        if turn.spoke_over_agent:
            barge = _ms(turn.barge_in_reaction_ms) if turn.agent_yielded else "talked on"
        row: list[str | Text] = [
            str(turn.index), Text(turn.caller_text), _ms(turn.first_audio_ms), _ms(turn.first_content_audio_ms), barge
        ]
        if by_turn:
            split = by_turn.get(turn.index)
            row += [_ms(getattr(split, field)) if split else "—" for field, _ in _SPAN_COLUMNS]
        table.add_row(*row)
    return table


def metrics_table(summary: CallSummary) -> Table:
    table = Table(title="Call quality", show_header=False)
    table.add_column("metric")
    table.add_column("value")
    fa, fc, br = summary.first_audio, summary.first_content_audio, summary.barge_in_reaction
    sentiment = " → ".join("?" if s is None else f"{s:+.1f}" for s in summary.sentiment_trajectory) or "—"
    if summary.sentiment_errors:
        sentiment += "  (? = " + "; ".join(summary.sentiment_errors) + ")"
    heard = summary.intelligibility
    if heard is None or heard.wer is None:
        clarity = f"— ({heard.reason if heard else 'not measured'})"
    else:
        clarity = (f"{heard.wer:.1%} WER ({heard.errors} of {heard.reference_words} words) — "
                   "the caller's Whisper over G.711 against what the agent meant to say")
    rows = [
        ("outcome", f"{summary.completion_reason}"),
        ("turns to resolution", _ms(summary.turns_to_resolution)),
        ("first audio p50 / p95 / p99", f"{_ms(fa.p50)} / {_ms(fa.p95)} / {_ms(fa.p99)} ms (n={fa.count}; a filler counts)"),
        ("first content audio p50 / p95 / p99",
         f"{_ms(fc.p50)} / {_ms(fc.p95)} / {_ms(fc.p99)} ms (n={fc.count}; the reply's own first words)"),
        ("barge-in reaction p50 / p95", f"{_ms(br.p50)} / {_ms(br.p95)} ms (n={br.count})"),
        ("barge-in rate", f"{summary.barge_in_rate:.0%} ({summary.barge_in_count})"),
        ("repeat rate", f"{summary.repeat_rate:.0%} ({len(summary.repeats)})"),
        ("dead air > 2 s rate", f"{summary.silence_over_2s_rate:.0%} of turns ({summary.long_silence_count} in the call; "
                                "a caller's pause before answering is not counted)"),
        ("overlap", f"{summary.overlap_ms:.0f} ms"),
        ("agent intelligibility", clarity),
        ("sentiment", sentiment),
    ]
    for name, value in rows:
        table.add_row(name, Text(value))
    return table


def expectations_table(summary: CallSummary) -> Table:
    table = Table(title="Scenario checks")
    table.add_column("check", overflow="fold")
    table.add_column("result", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for e in summary.expectations:
        result = Text("PASS", style="bold green") if e.passed else Text("FAIL", style="bold red")
        table.add_row(Text(e.name), result, Text(e.detail))
    return table


def call_report(summary: CallSummary, spans: Sequence[SpanSplit] = ()) -> Group:
    """All the report's tables as one renderable."""
    parts = [transcript_table(summary), latency_table(summary, spans), metrics_table(summary)]
    if summary.expectations:
        parts.append(expectations_table(summary))
    return Group(*parts)


def render_report(summary: CallSummary, spans: Sequence[SpanSplit] = (), console: Console | None = None) -> None:
    """Print the report (to stdout unless a console is given)."""
    (console or Console()).print(call_report(summary, spans))


def report_text(summary: CallSummary, spans: Sequence[SpanSplit] = (), width: int = 120) -> str:
    """The report as plain text (for a file beside the WAVs, or a test)."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(call_report(summary, spans))
    return console.export_text()

