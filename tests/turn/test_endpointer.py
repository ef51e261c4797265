import msgspec
import numpy as np
import pytest

from theo_ray.turn.endpointer import Decision, SmartEndpointer
from theo_ray.turn.settings import EndpointingSettings
from theo_ray.turn.vad import SileroVad

from .conftest import to_int16


@pytest.fixture
def endpointer():
    return SmartEndpointer(EndpointingSettings())


# GAP 13's table, plus the cases each rule exists for.
@pytest.mark.parametrize(
    "transcript, silence_ms, probability, ends, rule",
    [
        ("Eu quero...", 800, None, False, "incomplete"),
        ("...transferir para o suporte.", 600, None, True, "complete"),
        ("Meu CPF é 123...", 1200, None, False, "dictation"),
        ("É isso.", 400, None, True, "turn_marker"),
        # Turn markers end a turn fast even when the audio model hesitates.
        ("Quero a segunda via, tá?", 350, 0.3, True, "turn_marker"),
        ("Era só isso, obrigada", 320, None, True, "turn_marker"),
        ("Valeu, tchau!", 310, None, True, "turn_marker"),
        ("A fatura veio errada, né", 300, None, True, "turn_marker"),
        # Unfinished sentences wait, even when the turn model thinks it ended.
        ("Eu queria falar com", 900, 0.95, False, "incomplete"),
        ("O problema é que", 1000, 0.9, False, "incomplete"),
        ("Eu quero", 800, None, False, "incomplete"),
        ("Eu quero", 1300, None, True, "incomplete"),
        ("Sim, quero.", 400, None, True, "complete"),
        # Dictation: spelled digits, groups, phone numbers.
        ("meu cpf é um dois três, quatro cinco seis", 1200, 0.9, False, "dictation"),
        ("o telefone é 11 98765", 1400, 0.95, False, "dictation"),
        ("o número do protocolo é", 1200, None, False, "dictation"),
        ("protocolo dois zero dois quatro", 1500, None, False, "dictation"),
        # A complete number is not dictation any more.
        ("meu cpf é 529.982.247-25", 400, 0.9, True, "turn_model"),
        ("meu celular é 11 98765-4321", 400, 0.9, True, "turn_model"),
        # Turn model decides when the text is neutral.
        ("qual é o horário de funcionamento", 350, 0.85, True, "turn_model"),
        ("qual é o horário de funcionamento", 900, 0.1, False, "turn_model"),
        ("qual é o horário de funcionamento", 500, 0.5, False, "base"),
        ("qual é o horário de funcionamento", 650, 0.5, True, "base"),
        ("", 700, None, True, "base"),
        # Thinking aloud waits longest; a question or a plain "É." does not.
        ("Então, é que assim.", 1800, 0.9, False, "thinking"),
        ("Eu queria, hum...", 1300, None, False, "thinking"),
        ("É, deixa eu ver.", 1600, 0.8, False, "thinking"),
        ("Meu CPF é, peraí.", 2200, None, False, "thinking"),
        ("Deixa eu ver", 2500, None, True, "thinking"),
        ("Que tipo?", 400, None, True, "complete"),
        ("É.", 400, None, True, "complete"),
        # Nothing keeps a turn open forever.
        ("meu cpf é um dois três", 3100, None, True, "max_silence"),
    ],
)
def test_decision_table(endpointer, transcript, silence_ms, probability, ends, rule):
    decision = endpointer.decide(transcript, silence_ms, probability)
    assert (decision.end_of_turn, decision.rule) == (ends, rule), decision
    assert decision.end_of_turn == (silence_ms >= decision.wait_ms)
    assert decision.reason


def test_thresholds_come_from_settings():
    strict = SmartEndpointer(EndpointingSettings(base_silence_ms=1000, min_silence_ms=800))
    assert not strict.decide("É isso.", 500).end_of_turn
    assert strict.decide("É isso.", 800).wait_ms == 800
    custom = SmartEndpointer(EndpointingSettings(turn_markers=["câmbio"]))
    assert custom.decide("pode mandar, câmbio", 300).rule == "turn_marker"
    assert custom.decide("pode mandar, né", 300).rule != "turn_marker"


def test_decision_is_loggable(endpointer):
    decision = endpointer.decide("Meu CPF é 123", 500, 0.8)
    logged = msgspec.json.decode(msgspec.json.encode(decision), type=Decision)
    assert logged == decision
    assert logged.transcript_tail == "Meu CPF é 123"
    assert endpointer.stats.decisions == 1 and endpointer.stats.by_rule == {"dictation": 1}


def test_cpf_dictated_with_1200ms_pauses_is_not_cut_off(endpointer, speak):
    """Real VAD on espeak speech: four CPF groups separated by 1.2 s of silence. At every 32 ms
    window the endpointer sees the transcript of the groups spoken so far and the VAD's trailing
    silence; it must not end the turn in a pause, and must end it after the last group."""
    groups = ["meu cpf é cinco dois nove", "nove oito dois", "dois quatro sete", "dois cinco"]
    pause = np.zeros(int(16000 * 1.2), dtype=np.float32)
    pieces, group_end_s = [np.zeros(8000, dtype=np.float32)], []
    for i, group in enumerate(groups):
        pieces.append(speak(group))
        group_end_s.append(sum(p.size for p in pieces) / 16000)
        if i < len(groups) - 1:
            pieces.append(pause)
    pieces.append(np.zeros(16000, dtype=np.float32))  # 1 s after the last group
    pcm = to_int16(np.concatenate(pieces))
    vad = SileroVad()
    decisions_in_pauses, final_decision, heard_speech = [], None, False
    for start in range(0, pcm.size, 320):  # 20 ms frames, as RTP delivers them
        vad.process(pcm[start : start + 320].tobytes())
        heard_speech |= vad.speaking
        if not heard_speech:
            continue
        now_s = vad.now_ms / 1000
        spoken = [g for g, end in zip(groups, group_end_s) if end <= now_s + 0.05]
        transcript = ", ".join(spoken)
        decision = endpointer.decide(transcript, vad.silence_ms)
        if now_s < group_end_s[-1]:
            decisions_in_pauses.append(decision)
        else:
            final_decision = decision
    pauses = [d for d in decisions_in_pauses if d.silence_ms >= 1000]
    assert pauses, "the VAD never measured a pause of 1 s: the speech fixture is wrong"
    assert not any(d.end_of_turn for d in decisions_in_pauses), [
        d for d in decisions_in_pauses if d.end_of_turn]
    assert all(d.rule == "dictation" for d in pauses)
    # After the 11th digit the CPF is complete: the turn ends within the second of silence.
    assert final_decision is not None and final_decision.end_of_turn, final_decision


def test_a_long_statement_waits_a_pause_between_sentences(endpointer):
    story = "A internet caiu de novo ontem à noite."
    short = endpointer.decide(story, 400, 0.9, speech_ms=2500)
    assert (short.end_of_turn, short.rule) == (True, "turn_marker") or short.end_of_turn, short
    long = endpointer.decide(story, 1100, 0.9, speech_ms=9000)
    assert (long.end_of_turn, long.rule) == (False, "long_turn"), long
    assert endpointer.decide(story, 1900, 0.9, speech_ms=9000).end_of_turn
    question = endpointer.decide("O que eu faço?", 400, 0.9, speech_ms=9000)
    assert question.end_of_turn and question.rule != "long_turn", question
    marker = endpointer.decide("Já tentei de tudo, né", 350, None, speech_ms=9000)
    assert (marker.end_of_turn, marker.rule) == (True, "turn_marker"), marker
    off = SmartEndpointer(EndpointingSettings(long_turn_speech_ms=0)).decide(story, 1100, 0.9, speech_ms=9000)
    assert off.rule != "long_turn", off
