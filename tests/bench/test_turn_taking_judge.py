"""The turn-taking benchmark's judging (theo_ray/bench/turn_taking_judge.py) on synthetic
analyses and CallRecords whose truth is known, its run plan, and the corpus it plays (no Ray,
no SIP, no models)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from theo_ray.bench.turn_taking_bench import (
    CATEGORIES, TurnTakingBenchSettings, load_corpus, plan_runs, scenario_line, summarise, summary_rows,
)
from theo_ray.bench.turn_taking_judge import JudgeSettings, judge_call
from theo_ray.conversation.records import BargeInRecord, CallRecord, TurnRecord
from theo_ray.sim.analysis import CallAnalysis, CallerTurn
from theo_ray.sim.speech_regions import SpeechRegion, TrackLevels
from theo_ray.sim.scenario import BargeIn, decode_scenario

ORIGIN = 1000.0  # the recording's sample 0 on the CallActor's monotonic clock
SETTINGS = JudgeSettings(dead_air_ms=7000.0)


def at(ms: float) -> float:
    """A recording millisecond as a CallActor instant."""
    return ORIGIN + ms / 1000.0


def analysis(caller_turns=(), caller_regions=(), agent_regions=(), end_ms=20000.0) -> CallAnalysis:
    levels = TrackLevels(noise_floor_dbfs=-90.0, threshold_dbfs=-55.0, speech_level_dbfs=-20.0)
    turns = [CallerTurn(i + 1, kind, start, end, label) for i, (label, kind, start, end) in enumerate(caller_turns)]
    regions = list(caller_regions) or [(t.start_ms, t.end_ms) for t in turns]
    return CallAnalysis(
        sample_rate=16000, duration_ms=end_ms, call_start_ms=0.0, call_end_ms=end_ms,
        caller_levels=levels, agent_levels=levels,
        caller_regions=[SpeechRegion(a, b) for a, b in regions],
        agent_regions=[SpeechRegion(a, b) for a, b in agent_regions],
        caller_turns=turns, agent_turns=[], latencies=[], barge_ins=[], long_silences=[],
        overlaps=[], overlap_ms=0.0,
    )


DICTATION = decode_scenario("""
name: dictation
labels: {category: dictation}
steps:
  - {action: wait_agent}
  - {action: say, id: cpf, parts: ["um dois três", "quatro cinco seis"], pause_ms: 1200}
  - {action: hangup}
""")


def test_agent_audio_inside_a_dictation_is_a_cut_off_unless_it_is_the_agents_late_uhum():
    # Caller 1.0-5.0 s with a pause at 2.2-3.4 s; the agent played a short filler at 3.0 s
    # (an end of turn after the first group), then answered after the real end of turn.
    a = analysis([("cpf", "turn", 1000.0, 5000.0)], [(1000.0, 2200.0), (3400.0, 5000.0)],
                 agent_regions=[(0.0, 800.0), (3000.0, 3600.0), (5900.0, 8000.0)], end_ms=9000.0)
    record = CallRecord("s", turns=[
        TurnRecord(2, caller_text="quatro cinco seis", speech_end_at=at(5050.0), end_of_turn_at=at(5650.0),
                   endpoint_rule="dictation"),
    ])
    j = judge_call(DICTATION, a, record, ORIGIN, SETTINGS)
    (turn,) = j.turns
    assert turn.cut_off and turn.cut_at_ms == 3000.0 and turn.cut_in_ms == 600.0 and turn.agent_acks == 0
    assert turn.endpoint_wait_ms == pytest.approx(600.0) and turn.endpoint_rule == "dictation"
    assert j.category == "dictation" and not j.dead_air

    # The same short agent sound 6 s or more into a long caller turn: the agent's own "uhum".
    late = analysis([("cpf", "turn", 1000.0, 12000.0)], [(1000.0, 7200.0), (7800.0, 12000.0)],
                    agent_regions=[(7300.0, 7700.0), (12900.0, 14000.0)], end_ms=15000.0)
    j = judge_call(DICTATION, late, None, ORIGIN, SETTINGS)
    assert not j.turns[0].cut_off and j.turns[0].agent_acks == 1
    # ... but not after an end of turn the CallActor recorded before it.
    record = CallRecord("s", turns=[TurnRecord(1, caller_text="um", speech_end_at=at(7200.0),
                                               end_of_turn_at=at(7250.0))])
    assert judge_call(DICTATION, late, record, ORIGIN, SETTINGS).turns[0].cut_off
    # An agent that never says "uhum" (backchannel_after_speech_ms 0): every sound is a cut-off.
    never = JudgeSettings(dead_air_ms=7000.0, agent_ack_after_ms=0.0)
    assert judge_call(DICTATION, late, None, ORIGIN, never).turns[0].cut_off
    # Without a record a long agent region inside the turn is still a cut-off.
    long = analysis([("cpf", "turn", 1000.0, 5000.0)], [(1000.0, 2200.0), (3400.0, 5000.0)],
                    agent_regions=[(2700.0, 4500.0)])
    assert judge_call(DICTATION, long, None, ORIGIN, SETTINGS).turns[0].cut_off
    # Agent audio that starts in the caller's last 100 ms (detection edges) is not a cut-off.
    edge = analysis([("cpf", "turn", 1000.0, 5000.0)], agent_regions=[(4950.0, 7000.0)])
    assert not judge_call(DICTATION, edge, None, ORIGIN, SETTINGS).turns[0].cut_off


BACKCHANNELS = decode_scenario("""
name: backchannels
labels: {category: backchannel}
steps:
  - {action: wait_agent}
  - {action: say, id: pergunta, text: "Me explica o plano."}
  - {action: barge_in, id: bc1, text: "uhum", after_ms: 2000, expect_agent: continues}
  - {action: barge_in, id: bc2, text: "aham", after_ms: 5000, agent_turn: same, expect_agent: continues}
  - {action: barge_in, id: bc3, text: "tá", after_ms: 8000, agent_turn: same, expect_agent: continues}
  - {action: barge_in, id: bc4, text: "ok", after_ms: 9000, agent_turn: same, expect_agent: continues}
  - {action: barge_in, id: bc5, text: "sei", after_ms: 30000, agent_turn: same, expect_agent: continues}
  - {action: barge_in, id: bc6, text: "certo", after_ms: 10000, agent_turn: same, expect_agent: continues}
  - {action: barge_in, id: bc7, text: "hum", after_ms: 15000, agent_turn: same, expect_agent: continues}
  - {action: hangup}
""")


def test_backchannels_pause_and_resume_is_fine_an_interruption_verdict_or_silence_is_a_false_barge_in():
    agent = [(3000.0, 5100.0), (5400.0, 8100.0), (8300.0, 11000.0), (11500.0, 12000.0), (14500.0, 16000.0)]
    # When each utterance went out (bc1's breath before the "uhum" the detector heard at 5100).
    sent = {"pergunta": (1000.0, 2000.0), "bc1": (5000.0, 5300.0), "bc2": (8000.0, 8300.0),
            "bc3": (11000.0, 11300.0), "bc4": (11800.0, 12100.0), "bc6": (13000.0, 13300.0),
            "bc7": (18000.0, 18300.0)}
    a = analysis(
        [("pergunta", "turn", 1000.0, 2000.0), ("bc1", "backchannel", 5100.0, 5300.0),
         ("bc2", "backchannel", 8000.0, 8300.0), ("bc3", "backchannel", 11000.0, 11300.0),
         ("bc4", "backchannel", 11800.0, 12100.0), ("bc6", "backchannel", 13000.0, 13300.0),
         ("bc7", "backchannel", 18000.0, 18300.0)],
        agent_regions=agent,
    )
    record = CallRecord("s", turns=[TurnRecord(1, caller_text="me explica o plano", first_rtp_at=at(2950.0))],
                        barge_ins=[
        BargeInRecord(onset_at=at(5040.0), paused_at=at(5060.0), verdict="backchannel", decided_at=at(5500.0)),
        BargeInRecord(onset_at=at(8050.0), paused_at=at(8070.0), verdict="interruption", decided_at=at(8600.0)),
    ])
    j = judge_call(BACKCHANNELS, a, record, ORIGIN, SETTINGS, sent)
    by = {b.label: b for b in j.barges}
    # bc1: paused 300 ms and resumed; bc2: resumed, but the CallActor called it an interruption;
    # bc3: spoken into a gap between two sentences, the answer went on 500 ms later;
    # bc4: the agent went quiet and stayed quiet (nothing within 2 s of the burst's end);
    # bc6: spoken into a 2.5 s gap (TTS catching up), the answer went on 1.5 s later.
    # (Judged from the audio: the record says bc2 ended the reply, see below.)
    j = judge_call(BACKCHANNELS, a, None, ORIGIN, SETTINGS, sent)
    j.barges[:2] = judge_call(BACKCHANNELS, a, record, ORIGIN, SETTINGS, sent).barges[:2]  # the verdicts
    by = {b.label: b for b in j.barges}
    assert [by[k].stopped for k in ("bc1", "bc2", "bc3", "bc4", "bc6")] == [False, True, False, True, False]
    assert by["bc1"].verdict == "backchannel" and by["bc1"].pause_ms == pytest.approx(300.0)
    assert by["bc1"].onset_ms == 5000.0  # the breath, not the detected "uhum"
    assert by["bc3"].verdict == "" and by["bc3"].pause_ms is None  # the agent was not talking: no pause of its own
    assert all(b.kind == "backchannel" for b in j.barges)  # the question found the agent silent
    assert j.not_over_agent == 2  # bc5 never said, bc7 after the answer was over: not judged
    assert j.phantom_stops == 0
    # With the record: after bc2's interruption no reply was on its way any more, so bc3, bc4
    # and bc6 test nothing (not judged), nor does a backchannel over fillers with no answer.
    with_record = judge_call(BACKCHANNELS, a, record, ORIGIN, SETTINGS, sent)
    assert [b.label for b in with_record.barges] == ["bc1", "bc2"] and with_record.not_over_agent == 5
    no_answer = CallRecord("s", turns=[TurnRecord(1, caller_text="", filler_at=at(2500.0))])
    assert judge_call(BACKCHANNELS, a, no_answer, ORIGIN, SETTINGS, sent).barges == []
    row = summarise("backchannel", [j])
    assert (row.backchannels, row.backchannels_stopped, row.false_barge_in_rate) == (5, 2, 0.4)
    assert row.targets["false_barge_in"] is False and "missed_barge_in" not in row.targets
    assert row.backchannel_pause.count == 1


INTERRUPTIONS = decode_scenario("""
name: interruptions
labels: {category: correction}
steps:
  - {action: wait_agent}
  - {action: say, id: pergunta, text: "Me explica o plano."}
  - {action: barge_in, id: cut1, text: "Não, espera.", after_ms: 2000}
  - {action: say, id: pergunta2, text: "Me explica o boleto."}
  - {action: barge_in, id: cut2, text: "Espera.", after_ms: 2000}
  - {action: say, id: correcao, text: "Não, de fevereiro."}
  - {action: hangup}
""")


def test_interruptions_stop_within_the_reaction_or_are_missed_and_a_say_over_the_agent_takes_the_floor():
    a = analysis(
        [("pergunta", "turn", 500.0, 1500.0), ("cut1", "barge_in", 4000.0, 5000.0),
         ("pergunta2", "turn", 7000.0, 8000.0), ("cut2", "barge_in", 11000.0, 11600.0),
         ("correcao", "turn", 15000.0, 16000.0)],
        agent_regions=[(2500.0, 4080.0), (9000.0, 14000.0), (14500.0, 15300.0)],
    )
    record = CallRecord("s", turns=[TurnRecord(1, first_rtp_at=at(2450.0)), TurnRecord(2, first_rtp_at=at(8950.0))],
                        barge_ins=[
        BargeInRecord(onset_at=at(4030.0), paused_at=at(4050.0), verdict="interruption"),
        BargeInRecord(onset_at=at(11020.0), paused_at=at(11040.0), verdict="backchannel"),
        BargeInRecord(onset_at=at(19000.0), paused_at=at(19010.0), verdict="interruption"),  # nobody spoke
    ])
    j = judge_call(INTERRUPTIONS, a, record, ORIGIN, SETTINGS)  # no send times: the detected onsets
    by = {b.label: b for b in j.barges}
    assert set(by) == {"cut1", "cut2", "correcao"}
    assert by["cut1"].kind == "interruption" and by["cut1"].stopped and by["cut1"].reaction_ms == 80.0
    assert by["cut2"].kind == "interruption" and not by["cut2"].stopped and by["cut2"].verdict == "backchannel"
    assert by["correcao"].kind == "floor" and by["correcao"].stopped
    assert j.phantom_stops == 1
    row = summarise("correction", [j])
    assert (row.interruptions, row.missed_barge_ins) == (3, 1)
    assert row.reaction.count == 1 and row.reaction.p50 == 80.0  # the floor is not a reaction figure
    assert row.targets["missed_barge_in"] is False
    assert row.false_barge_in_rate == 1.0  # one phantom stop, no backchannel


NOISE_AND_SILENCE = decode_scenario("""
name: noise_and_silence
labels: {category: noise, must_not_say: "cancelamento"}
steps:
  - {action: wait_agent}
  - {action: say, id: pergunta, text: "Quero mudar de plano."}
  - {action: say, id: batida, wav: /nonexistent/knock.wav}
  - {action: silence, ms: 9000}
  - {action: hangup}
expect:
  agent_says:
    - {pattern: "mudar"}
    - {pattern: "fevereiro"}
""")


def test_noise_answered_dead_air_and_expected_answers():
    a = analysis(
        [("pergunta", "turn", 1000.0, 2000.0), ("batida", "turn", 6000.0, 6400.0)],
        agent_regions=[(0.0, 800.0), (3000.0, 5000.0), (7000.0, 7600.0)], end_ms=16000.0,
    )
    record = CallRecord("s", silence_prompts=0, turns=[
        TurnRecord(1, caller_text="quero mudar de plano", agent_text="Claro, posso mudar o seu plano.",
                   first_rtp_at=at(3000.0), speech_end_at=at(2050.0), end_of_turn_at=at(2400.0)),
        TurnRecord(2, caller_text="", agent_text="Vou registrar o cancelamento.", interrupted=True,
                   heard_text="Vou registrar o cancelamento", first_rtp_at=at(7000.0)),
    ])
    j = judge_call(NOISE_AND_SILENCE, a, record, ORIGIN, SETTINGS)
    noise = next(t for t in j.turns if t.label == "batida")
    assert noise.noise_only and not noise.noise_answered and not noise.cut_off  # no turn ended on it
    # The CallActor ending a turn on the knock is answering it (without a record: the audio after it).
    answered = CallRecord("s", turns=[*record.turns, TurnRecord(3, end_of_turn_at=at(6700.0))])
    assert next(t for t in judge_call(NOISE_AND_SILENCE, a, answered, ORIGIN, SETTINGS).turns
                if t.label == "batida").noise_answered
    assert next(t for t in judge_call(NOISE_AND_SILENCE, a, None, ORIGIN, SETTINGS).turns
                if t.label == "batida").noise_answered
    assert [round(d.duration_ms) for d in j.dead_air] == [8400]  # 7.6 -> 16.0 s, over the 7 s limit
    assert j.longest_silence_ms == pytest.approx(8400.0)
    assert (j.expected_total, j.expected_ok) == (3, 1)
    assert set(j.unexpected) == {"fevereiro", "not: cancelamento"}
    row = summarise("noise", [j])
    assert (row.caller_turns, row.noise_utterances, row.noise_answered, row.dead_air) == (1, 1, 0, 1)
    assert row.targets == {"false_cut_off": True, "dead_air": False}
    assert row.endpoint_wait.p50 == pytest.approx(350.0)


def test_summary_rows_group_by_category_line_and_voice_with_overall_last():
    j1 = judge_call(DICTATION, analysis([("cpf", "turn", 1000.0, 5000.0)]), None, ORIGIN, SETTINGS)
    j2 = judge_call(BACKCHANNELS, analysis([("pergunta", "turn", 1000.0, 2000.0)]), None, ORIGIN, SETTINGS)
    j1.voice, j2.voice, j2.line = "pm_alex", "espeak", "impaired"
    names = [r.name for r in summary_rows([j1, j2])]
    assert names == ["dictation", "backchannel", "line: clean", "line: impaired", "voice: pm_alex",
                     "voice: espeak", "overall"]
    j2.caller_stall_ms = 250.0  # the simulator's sending stalled in this call: a row without it
    rows = summary_rows([j1, j2])
    assert [r.name for r in rows][-2:] == ["overall", "overall, sent as written"]
    assert rows[-1].calls == 1 and rows[-2].stalled_calls == 1


def test_the_corpus_has_forty_labelled_scenarios_in_every_category_and_its_runs_are_planned():
    corpus = load_corpus(TurnTakingBenchSettings())
    assert len(corpus) >= 40
    assert set(Counter(s.labels["category"] for s in corpus)) == set(CATEGORIES)
    for scenario in corpus:
        assert scenario.description and scenario.steps
        for wav in scenario.wav_paths():
            assert Path(wav).is_file(), wav
        steps = [s for s in scenario.steps if isinstance(s, BargeIn)]
        assert len({s.id for s in steps}) == len(steps)  # labelled, each its own id
    echo = [s for s in corpus if s.labels["category"] == "echo"]
    assert echo and all(scenario_line(s)[0] == "echo" and scenario_line(s)[1].echo_gain_db < 0 for s in echo)

    settings = TurnTakingBenchSettings(voices=["pm_alex", "espeak"])
    runs = plan_runs(corpus, settings)
    impaired = [s for s in corpus if s.labels.get("impaired") == "yes"]
    assert len(impaired) >= 5
    assert len(runs) == 2 * len(corpus) + len(impaired)  # the impaired subset with the first voice
    assert all(r.line is not None and r.line.loss_percent > 0 and r.voice == "pm_alex"
               for r in runs if r.line_name == "impaired")
    assert [r.voice for r in runs[:2]] == ["pm_alex", "espeak"] and runs[0].scenario is runs[1].scenario
    assert len(plan_runs(corpus, TurnTakingBenchSettings(voices=["espeak"], impaired=False))) == len(corpus)
    only = load_corpus(TurnTakingBenchSettings(categories=["dictation"], limit=3))
    assert len(only) == 3 and {s.labels["category"] for s in only} == {"dictation"}
    subset = load_corpus(TurnTakingBenchSettings(per_category=3))
    assert Counter(s.labels["category"] for s in subset) == {c: 3 for c in CATEGORIES}
    assert {s.name for s in impaired} <= {s.name for s in subset}  # the impaired subset goes first
