"""Caller-side measurements checked against synthetic calls whose timing is known to the sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from theo_ray.sim.analysis import dead_air_over, silences_over, AnalysisSettings, analyse
from theo_ray.sim.percentiles import percentiles
from theo_ray.sim.speech_regions import VadSettings, detect_speech
from theo_ray.sim.turn_transcripts import transcribe_agent_turns
from theo_ray.sim.recording import CallRecording
from tests.sim.synthetic import RATE, SyntheticCall, agent_speech, ms, noise, speech, voiced_point

TOL_MS = 20.0

PERGUNTA = "Oi, bom dia. Qual é o horário de atendimento de vocês?"
RESPOSTA = "Bom dia! Nosso atendimento funciona de segunda a sexta, das oito às dezoito horas."
LONGA = (
    "Temos três planos de internet. O plano básico tem cem megas e custa setenta reais por mês. "
    "O plano intermediário tem trezentos megas e custa noventa reais."
)


def s(seconds: float) -> int:
    return int(seconds * RATE)


@pytest.mark.parametrize("with_events", [True, False])
def test_first_agent_audio_640_ms_after_caller_speech(with_events: bool) -> None:
    call = SyntheticCall(seconds=14)
    caller_end = call.caller(speech(PERGUNTA), s(1.0), label="pergunta" if with_events else None)
    agent_start = caller_end + s(0.640)
    call.agent(agent_speech(RESPOSTA), agent_start)
    result = analyse(call.finish())

    assert len(result.latencies) == 1
    lat = result.latencies[0]
    assert lat.caller_end_ms == pytest.approx(ms(caller_end), abs=TOL_MS)
    assert lat.agent_start_ms == pytest.approx(ms(agent_start), abs=TOL_MS)
    assert lat.first_audio_ms == pytest.approx(640.0, abs=TOL_MS)
    assert len(result.caller_turns) == 1 and result.caller_turns[0].kind == "turn"
    assert result.caller_turns[0].label == ("pergunta" if with_events else "")


def test_latency_measured_from_a_saved_and_reloaded_wav(tmp_path: Path) -> None:
    call = SyntheticCall(seconds=12)
    caller_end = call.caller(speech(PERGUNTA), s(0.5), label="pergunta")
    call.agent(agent_speech(RESPOSTA), caller_end + s(1.234))
    wav, _ = call.finish().save(tmp_path / "call.wav")
    result = analyse(CallRecording.load(wav))
    assert result.latencies[0].first_audio_ms == pytest.approx(1234.0, abs=TOL_MS)


def test_barge_in_reaction_85_ms() -> None:
    call = SyntheticCall(seconds=16)
    caller_end = call.caller(speech("Me explica os planos de internet."), s(0.5), label="planos")
    agent_start = caller_end + s(0.7)
    onset = agent_start + voiced_point(agent_speech(LONGA), 2.0)
    call.agent(agent_speech(LONGA), agent_start, cut_at=onset + s(0.085))
    cut_end = call.caller(speech("Espera, eu só quero o mais barato."), onset, label="corte", mark="barge_in")
    call.agent(agent_speech("O mais barato é o básico."), cut_end + s(0.6))
    result = analyse(call.finish())

    assert len(result.barge_ins) == 1
    barge = result.barge_ins[0]
    assert barge.agent_yielded and barge.intended == "stops" and barge.label == "corte"
    assert barge.caller_onset_ms == pytest.approx(ms(onset), abs=TOL_MS)
    assert barge.reaction_ms == pytest.approx(85.0, abs=TOL_MS)
    # The answer to the interruption is a turn with its own latency.
    assert [lat.first_audio_ms for lat in result.latencies] == pytest.approx([700.0, 600.0], abs=TOL_MS)
    assert [t.kind for t in result.caller_turns] == ["turn", "barge_in"]
    assert result.overlap_ms == pytest.approx(85.0, abs=TOL_MS)


def test_barge_in_found_from_audio_alone() -> None:
    call = SyntheticCall(seconds=14)
    caller_end = call.caller(speech("Me explica os planos."), s(0.5))
    agent_start = caller_end + s(0.5)
    onset = agent_start + voiced_point(agent_speech(LONGA), 1.5, after_ms=200)
    call.agent(agent_speech(LONGA), agent_start, cut_at=onset + s(0.150))
    call.caller(speech("Espera, espera."), onset)
    result = analyse(call.finish())
    assert [t.kind for t in result.caller_turns] == ["turn", "barge_in"]
    assert result.barge_ins[0].reaction_ms == pytest.approx(150.0, abs=TOL_MS)
    assert result.barge_ins[0].intended is None


@pytest.mark.parametrize("over", ["voiced speech", "a pause between the agent's sentences"])
def test_backchannel_while_agent_talks_on(over: str) -> None:
    call = SyntheticCall(seconds=14)
    caller_end = call.caller(speech("Como tiro a segunda via?"), s(0.5), label="segunda_via")
    agent_start = caller_end + s(0.6)
    agent_end = call.agent(agent_speech(LONGA), agent_start)
    # At 1.5 s the espeak reply pauses briefly after its first sentence: "uhum" lands across it.
    at = voiced_point(agent_speech(LONGA), 2.5, after_ms=600) if over == "voiced speech" else s(1.5)
    call.caller(speech("uhum"), agent_start + at, label="uhum", mark="backchannel")
    result = analyse(call.finish())

    assert [t.kind for t in result.caller_turns] == ["turn", "backchannel"]
    barge = result.barge_ins[0]
    assert not barge.agent_yielded and barge.reaction_ms is None and barge.intended == "continues"
    assert barge.agent_stop_ms == pytest.approx(ms(agent_end), abs=TOL_MS)
    # A backchannel gets no latency row: only the real question does.
    assert [lat.caller_turn for lat in result.latencies] == [1]


def test_comfort_noise_at_minus_60_dbfs_is_not_agent_audio() -> None:
    rx = np.clip(noise(s(10), -60.0), -32768, 32767).astype(np.int16)
    regions, levels = detect_speech(rx, RATE)
    assert regions == []
    assert levels.noise_floor_dbfs == pytest.approx(-60.0, abs=1.5)
    assert levels.threshold_dbfs > -60.0 + 10


def test_comfort_noise_before_answer_and_between_turns_is_ignored() -> None:
    call = SyntheticCall(seconds=10, agent_noise_dbfs=-60.0)
    call.agent(agent_speech("Olá, aqui é o Theo."), s(1.0))
    result = analyse(call.finish())
    assert len(result.agent_regions) == 1  # only the greeting, not 8 s of noise
    assert result.agent_regions[0].start_ms == pytest.approx(1000.0, abs=TOL_MS)


def test_threshold_is_relative_and_configurable() -> None:
    voice = speech(PERGUNTA)
    track = noise(s(8), -50.0)
    track[s(2) : s(2) + len(voice)] += voice
    pcm = np.clip(track, -32768, 32767).astype(np.int16)
    regions, levels = detect_speech(pcm, RATE)
    assert levels.noise_floor_dbfs == pytest.approx(-50.0, abs=1.5)
    assert regions[0].start_ms == pytest.approx(2000.0, abs=TOL_MS)
    assert regions[-1].end_ms == pytest.approx(ms(s(2) + len(voice)), abs=60.0)
    # A margin above the speech level finds nothing: the threshold really moves with the setting.
    none, _ = detect_speech(pcm, RATE, VadSettings(snr_margin_db=80.0, max_threshold_dbfs=0.0))
    assert none == []


def test_silences_over_two_seconds() -> None:
    call = SyntheticCall(seconds=12)
    end1 = call.caller(speech("Alô?"), s(0.3), label="alo")
    agent_at = end1 + s(2.5)  # a 2.5 s hole: counted
    end2 = call.agent(agent_speech("Oi, estou aqui."), agent_at)
    end3 = call.caller(speech("Tá bom."), end2 + s(1.5), label="ok")  # 1.5 s: not counted
    result = analyse(call.finish(hangup_at=end3 + s(0.5)))
    assert len(result.long_silences) == 1
    gap = result.long_silences[0]
    assert gap.start_ms == pytest.approx(ms(end1), abs=TOL_MS)
    assert gap.end_ms == pytest.approx(ms(agent_at), abs=TOL_MS)
    assert result.call_end_ms == pytest.approx(ms(end3 + s(0.5)))
    stricter = analyse(call.rec, AnalysisSettings(long_silence_ms=1000))
    assert len(stricter.long_silences) == 2


def test_dead_air_leaves_out_the_callers_own_pause() -> None:
    call = SyntheticCall(seconds=16)
    end1 = call.caller(speech("Alô?"), s(0.3), label="alo")
    filler_end = call.agent(agent_speech("Um momento."), end1 + s(0.8))
    reply_end = call.agent(agent_speech("Oi, estou aqui."), filler_end + s(2.4))  # owed: counted
    end3 = call.caller(speech("Tá bom."), reply_end + s(3.0), label="ok")  # the caller's pause
    result = analyse(call.finish(hangup_at=end3 + s(0.5)))
    assert len(silences_over(result, 2000)) == 2
    [gap] = dead_air_over(result, 2000)
    assert gap.start_ms == pytest.approx(ms(filler_end), abs=TOL_MS)


def test_dictation_pauses_are_one_turn_without_events() -> None:
    call = SyntheticCall(seconds=16)
    pos = s(0.5)
    for group in ("um dois três", "quatro cinco seis", "sete oito nove", "zero zero"):
        pos = call.caller(speech(group), pos) + s(1.2)
    last_end = pos - s(1.2)
    call.agent(agent_speech("Obrigado, anotei o seu CPF."), last_end + s(0.8))
    result = analyse(call.finish())
    assert len(result.caller_turns) == 1
    assert result.latencies[0].caller_end_ms == pytest.approx(ms(last_end), abs=TOL_MS)
    assert result.latencies[0].first_audio_ms == pytest.approx(800.0, abs=TOL_MS)


def test_agent_turns_group_sentences_and_follow_caller_turns() -> None:
    call = SyntheticCall(seconds=14)
    greet_end = call.agent(agent_speech("Olá, aqui é o Theo."), s(0.3))
    end = call.caller(speech("Quero saber da minha fatura."), greet_end + s(1.0), label="fatura")
    first = call.agent(agent_speech("Claro."), end + s(0.5))
    call.agent(agent_speech("Qual fatura você quer consultar?"), first + s(0.4))  # same turn
    result = analyse(call.finish())
    assert [(t.index, t.after_caller_turn) for t in result.agent_turns] == [(1, 0), (2, 1)]
    assert len(result.agent_turns[1].regions) == 2


async def test_transcribe_hook_gets_each_agent_turn() -> None:
    """The STT is a test double here: it records the audio slices it is given."""
    call = SyntheticCall(seconds=10)
    greet_end = call.agent(agent_speech("Olá."), s(0.5))
    end = call.caller(speech("Oi."), greet_end + s(1.0), label="oi")
    call.agent(agent_speech("Em que posso ajudar?"), end + s(0.5))
    rec = call.finish()
    result = analyse(rec)
    slices: list[np.ndarray] = []

    async def fake_stt(audio: np.ndarray, rate: int) -> str:
        assert rate == RATE and audio.dtype == np.int16
        slices.append(audio)
        return f" turno {len(slices)} "

    texts = await transcribe_agent_turns(rec, result, fake_stt, pad_ms=100)
    assert [t.text for t in texts] == ["turno 1", "turno 2"]
    for turn, audio in zip(result.agent_turns, slices):
        assert len(audio) == pytest.approx((turn.end_ms - turn.start_ms + 200) * RATE / 1000, abs=2)


def test_percentiles() -> None:
    values = [float(v) for v in range(1, 101)] + [None]
    p = percentiles(values)
    expected = np.percentile(np.arange(1, 101), [50, 95, 99])
    assert p.count == 100
    assert (p.p50, p.p95, p.p99) == pytest.approx(tuple(expected), abs=0.05)
    assert p.max == 100.0 and p.mean == pytest.approx(50.5)
    assert percentiles([None]).count == 0 and percentiles([]).p50 is None


def test_an_empty_or_silent_call_measures_nothing_but_the_silence() -> None:
    assert analyse(CallRecording()).caller_turns == []
    rec = CallRecording()
    rec.extend_to(s(5))
    result = analyse(rec)
    assert result.caller_regions == result.agent_regions == [] and result.latencies == []
    assert [(g.start_ms, g.end_ms) for g in result.long_silences] == [(0.0, 5000.0)]
