"""GAP 16 metrics and scenario checks on hand-made calls (real espeak speech, known timing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from theo_ray.sim.analysis import CallAnalysis, analyse
from theo_ray.sim.turn_transcripts import TurnText, transcribe_agent_turns
from theo_ray.sim.call_outcome import CallOutcome
from theo_ray.sim.conversation_metrics import (
    SentimentRequest,
    SentimentScore,
    caller_texts_from_scenario,
    find_repeats,
    read_summary,
    summarise_call,
    token_set_ratio,
    write_summary,
)
from theo_ray.sim.recording import CallRecording
from theo_ray.sim.scenario import Scenario, decode_scenario
from tests.sim.synthetic import RATE, SyntheticCall, agent_speech, speech, voiced_point

SCENARIO = """
name: fatura_e_atendente
steps:
  - {action: wait_agent}
  - {action: say, id: fatura, text: "Quero saber da minha fatura."}
  - {action: wait_agent}
  - {action: say, id: janeiro, text: "A de janeiro."}
  - {action: wait_agent}
  - {action: say, id: atendente1, text: "Quero falar com um atendente."}
  - {action: wait_agent}
  - {action: say, id: atendente2, text: "Eu quero falar com um atendente, por favor!"}
  - {action: wait_agent}
  - {action: hangup}
expect:
  agent_says:
    - {turn: 1, pattern: "theo"}
    - {turn: 3, pattern: "janeiro"}
    - {turn: 4, pattern: "boleto"}
  transfer: true
  max_first_audio_ms: 1000
  max_silence_ms: 2500
"""

AGENT_WORDS = {
    1: "Olá, aqui é o Theo.",
    2: "Claro. Qual fatura?",
    3: "A fatura de janeiro vence dia dez.",
    4: "Posso ajudar com mais alguma coisa?",
    5: "Vou transferir você para um atendente.",
}
# Agent reply delay after each caller turn (s); turn 2's is slow on purpose.
DELAYS = {"fatura": 0.6, "janeiro": 1.2, "atendente1": 0.5, "atendente2": 0.7}


def s(seconds: float) -> int:
    return int(seconds * RATE)


def build_call() -> tuple[CallRecording, Scenario]:
    scenario = decode_scenario(SCENARIO)
    call = SyntheticCall(seconds=30)
    pos = call.agent(agent_speech(AGENT_WORDS[1]), s(0.3))
    for n, (label, utt) in enumerate(scenario.labelled_utterances(), start=2):
        end = call.caller(speech(utt.spoken_text()), pos + s(0.8), label=label)
        pos = call.agent(agent_speech(AGENT_WORDS[n]), end + s(DELAYS[label]))
    # The caller waits 3 s in silence after the transfer announcement, then the call ends.
    return call.finish(hangup_at=pos + s(3.0)), scenario


async def canned_stt(texts: dict[int, str]):
    """Test double for the STT: returns the words the agent turn was synthesised from."""
    calls = iter(sorted(texts))

    async def stt(audio: np.ndarray, rate: int) -> str:
        assert audio.size > 0 and np.any(audio)
        return texts[next(calls)]

    return stt


async def summarise(rec: CallRecording, scenario: Scenario, outcome: CallOutcome, classify=None):
    analysis = analyse(rec)
    agent_texts = await transcribe_agent_turns(rec, analysis, await canned_stt(AGENT_WORDS))
    return analysis, await summarise_call(
        "call-1",
        analysis,
        outcome,
        caller_texts_from_scenario(analysis, scenario),
        agent_texts,
        scenario=scenario,
        classify_sentiment=classify,
    )


def test_token_set_ratio_ignores_order_case_and_accents() -> None:
    assert token_set_ratio("Quero falar com um ATENDENTE", "atendente, quero falar com um") == 1.0
    assert token_set_ratio("não é essa fatura", "nao e essa fatura") == 1.0
    assert token_set_ratio("qual o horário", "minha fatura de janeiro") < 0.5
    assert token_set_ratio("", "oi") == 0.0


def test_find_repeats_needs_shared_content_words() -> None:
    texts = [(1, "Quero saber da minha fatura de janeiro."), (2, "A de janeiro."), (3, "a de janeiro")]
    # "a de janeiro" shares one content word with turn 1: a follow-up, not a repeat; 3 repeats 2
    # only if two content words are shared, which "a de janeiro" cannot give.
    assert find_repeats(texts) == []
    again = find_repeats([(1, "quero a segunda via do boleto"), (2, "eu quero a segunda via do boleto, por favor")])
    assert [(r.turn, r.previous_turn) for r in again] == [(2, 1)] and again[0].similarity >= 0.8


async def test_summary_of_a_transferred_call_with_a_repeat(tmp_path: Path) -> None:
    rec, scenario = build_call()
    outcome = CallOutcome(ended_by="transfer", transferred=True, transfer_target="fila-suporte",
                          transfer_reason="cliente pediu atendente humano")

    async def classify(req: SentimentRequest) -> SentimentScore:
        """Test double for the LLM classifier: frustrated when asking for a human; fails on turn 2."""
        if req.turn_index == 2:
            raise TimeoutError("model busy")
        if "atendente" in req.caller_text:
            return SentimentScore("negative", -0.3 - 0.2 * len(req.context))
        return SentimentScore("neutral", 0.0)

    analysis, summary = await summarise(rec, scenario, outcome, classify)

    assert [t.label for t in summary.turns] == ["fatura", "janeiro", "atendente1", "atendente2"]
    assert summary.greeting_text == AGENT_WORDS[1]
    assert summary.turns[1].agent_text == AGENT_WORDS[3]
    assert not summary.task_completed and summary.turns_to_resolution is None
    assert "cliente pediu atendente humano" in summary.completion_reason
    assert summary.transfer_reason == "cliente pediu atendente humano"
    assert [(r.turn, r.previous_turn) for r in summary.repeats] == [(4, 3)]
    assert summary.turns[3].repeat_of == 3 and summary.turns[1].repeat_of is None
    assert summary.repeat_rate == pytest.approx(1 / 3, abs=0.001)
    # Sentiment: the classifier saw growing context; its failure on turn 2 is counted, not fatal.
    traj = summary.sentiment_trajectory
    assert traj[0] == 0.0 and traj[1] is None and traj[2] < 0 and traj[3] < traj[2]
    assert summary.sentiment_failures == 1
    # The 3 s of silence after the transfer announcement is the one long silence, in turn 4's window.
    assert summary.long_silence_count == 1 and summary.turns[3].long_silence
    assert summary.silence_over_2s_rate == pytest.approx(0.25)
    assert summary.barge_in_count == 0 and summary.barge_in_rate == 0.0
    assert summary.first_audio.count == 4
    assert summary.first_audio.max == pytest.approx(1200.0, abs=20.0)

    results = {e.name: e.passed for e in summary.expectations}
    assert results["agent_says[agent turn 1] ~ /theo/"]
    assert results["agent_says[agent turn 3] ~ /janeiro/"]
    assert not results["agent_says[agent turn 4] ~ /boleto/"]
    assert results["transfer = True"]
    assert results["first_audio[turn 1] <= 1000 ms"] and not results["first_audio[turn 2] <= 1000 ms"]
    assert not results["silence <= 2500 ms"]
    assert not summary.passed

    path = write_summary(summary, tmp_path / "out" / "summary.json")
    assert read_summary(path) == summary


async def test_completed_call_counts_turns_to_resolution() -> None:
    rec, scenario = build_call()
    _, summary = await summarise(rec, scenario, CallOutcome(ended_by="caller"))
    assert summary.task_completed and summary.completion_reason.startswith("resolved")
    assert summary.turns_to_resolution == 4
    assert summary.transfer_reason == "" and summary.sentiment_trajectory == [None] * 4
    assert {e.name: e.passed for e in summary.expectations}["transfer = True"] is False


async def test_barge_in_and_backchannel_checks() -> None:
    scenario = decode_scenario(
        """
name: corte
steps:
  - {action: say, id: planos, text: "Me explica os planos."}
  - {action: barge_in, id: uhum, text: "uhum", expect_agent: continues}
  - {action: barge_in, id: corte, text: "Espera, quero o mais barato.", expect_agent: stops}
  - {action: wait_agent}
expect:
  max_barge_in_reaction_ms: 100
"""
    )
    long_reply = agent_speech(
        "Temos três planos de internet. O plano básico tem cem megas e custa setenta reais por mês. "
        "O plano intermediário tem trezentos megas e custa noventa reais."
    )
    call = SyntheticCall(seconds=20)
    end = call.caller(speech("Me explica os planos."), s(0.3), label="planos")
    start = end + s(0.6)
    call.caller(speech("uhum"), start + voiced_point(long_reply, 1.0, after_ms=600), label="uhum", mark="backchannel")
    onset = start + voiced_point(long_reply, 5.0)
    call.agent(long_reply, start, cut_at=onset + s(0.180))
    end = call.caller(speech("Espera, quero o mais barato."), onset, label="corte", mark="barge_in")
    call.agent(agent_speech("O mais barato é o básico."), end + s(0.6))
    rec = call.finish()
    analysis: CallAnalysis = analyse(rec)
    agent_texts = [TurnText(t.index, t.start_ms, t.end_ms, "") for t in analysis.agent_turns]
    summary = await summarise_call(
        "call-2", analysis, CallOutcome(ended_by="caller"), caller_texts_from_scenario(analysis, scenario),
        agent_texts, scenario=scenario,
    )
    results = {e.name: e.passed for e in summary.expectations}
    assert results == {
        "barge_in[uhum] agent continues": True,
        "barge_in[corte] agent stops": True,
        "barge_in_reaction[corte] <= 100 ms": False,  # it took 180 ms
    }
    assert summary.barge_in_count == 1
    assert summary.barge_in_reaction.p50 == pytest.approx(180.0, abs=20.0)
    assert summary.barge_in_rate == pytest.approx(1 / len(analysis.agent_turns))
    assert [t.kind for t in summary.turns] == ["turn", "backchannel", "barge_in"]
