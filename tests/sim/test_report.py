"""The call report shows the transcript, the caller-side latency per turn, the span split and the checks."""

from __future__ import annotations

import io

from rich.console import Console

from theo_ray.sim.call_outcome import CallOutcome
from theo_ray.sim.report import SpanSplit, render_report, report_text
from tests.sim.test_conversation_metrics import AGENT_WORDS, build_call, summarise


async def test_report_has_transcript_latencies_and_checks() -> None:
    rec, scenario = build_call()
    _, summary = await summarise(rec, scenario, CallOutcome(ended_by="transfer", transferred=True,
                                                            transfer_reason="pediu atendente"))
    text = report_text(summary, width=200)
    for words in [AGENT_WORDS[1], AGENT_WORDS[3], "Quero saber da minha fatura.", "A de janeiro."]:
        assert words in text
    for turn in summary.turns:
        assert f"{turn.first_audio_ms:.0f}" in text
    assert "transferred: pediu atendente" in text
    # Check names hold brackets; they are shown as written, not read as rich markup.
    assert "agent_says[agent turn 4] ~ /boleto/" in text and "first_audio[turn 2] <= 1000 ms" in text
    failed = [line for line in text.splitlines() if "FAIL" in line]
    assert any("boleto" in line for line in failed) and any("turn 2" in line for line in failed)
    assert any("turn 1]" in line and "PASS" in line for line in text.splitlines())
    assert "STT" not in text  # no span columns without a span split


async def test_span_split_columns() -> None:
    rec, scenario = build_call()
    _, summary = await summarise(rec, scenario, CallOutcome(ended_by="caller"))
    spans = [
        SpanSplit(turn=1, endpointing_wait_ms=301.0, stt_ms=122.0, llm_first_token_ms=187.0,
                  llm_first_sentence_ms=412.0, tts_first_chunk_ms=96.0, first_rtp_ms=21.0),
        SpanSplit(turn=3, stt_ms=133.0),
    ]
    text = report_text(summary, spans, width=200)
    for title in ("endpoint", "STT", "LLM 1st tok", "LLM 1st sent", "TTS 1st chunk", "1st RTP"):
        assert title in text
    row1 = next(line for line in text.splitlines() if "Quero saber da minha fatura." in line and "│" in line
                and "301" in line)
    for figure in ("301", "122", "187", "412", "96", "21"):
        assert figure in row1
    assert any("133" in line and "Quero falar com um atendente." in line for line in text.splitlines())

    out = io.StringIO()
    render_report(summary, spans, console=Console(file=out, width=200, color_system=None))
    assert "LLM 1st tok" in out.getvalue()
