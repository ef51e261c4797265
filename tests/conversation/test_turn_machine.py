"""Fast tests of the turn machine: a TurnLoop on fakes in virtual time (no Ray, no models).

Each test is one whole call: the scripted caller speaks at fixed instants, the line records
what the caller received, and the checks read the call record and the caller's ear. The
slow end-to-end versions (real Ray, Whisper, Kokoro) are in test_turn_loop.py.
"""

from __future__ import annotations

from theo_ray.conversation.settings import ConversationSettings
from theo_ray.messages import ToolCall
from tests.fakes.fake_call import fake_call
from tests.fakes.scripted_caller import Line
from tests.fakes.scripted_models import Rule
from tests.fakes.virtual_loop import run_virtual

LONG_ANSWER = (
    "O plano Fibra 300 custa oitenta e nove reais por mês. A instalação é grátis e leva até três dias úteis. "
    "O roteador vem incluso e a fidelidade é de doze meses. Posso ajudar em mais alguma coisa?"
)
RULES = [
    Rule(match="plano", reply=LONG_ANSWER),
    Rule(match="horário", reply="Atendemos de segunda a sábado, das oito às vinte horas."),
    Rule(match="boleto", reply="Claro. Vou ver o seu boleto."),
    Rule(match="atendente", reply="", tool=ToolCall(id="c1", name="transfer_call",
                                                    arguments={"destination": "atendimento", "reason": "pedido do cliente"})),
    Rule(match="quebrado", reply="Isso vai dar erro agora.", fail=True),
]


def test_question_gets_its_answer_after_the_greeting():
    result = run_virtual(lambda: fake_call([Line(3.0, "Qual é o horário de atendimento?", 1.6)], RULES, seconds=12))
    record = result.record
    assert record.greeting_text
    assert [t.caller_text for t in record.turns] == ["Qual é o horário de atendimento?"]
    turn = record.turns[0]
    assert turn.agent_text.startswith("Atendemos de segunda a sábado")
    assert not turn.interrupted and not record.barge_ins and not record.errors
    assert turn.speech_end_at < turn.end_of_turn_at <= turn.stt_final_at <= turn.llm_first_token_at
    assert turn.llm_first_sentence_at <= turn.tts_first_chunk_at <= turn.first_audio_enqueued_at <= turn.first_rtp_at
    assert turn.drained_at >= turn.first_rtp_at
    # The reply is heard after the caller stopped (4.6 s), and whole: the line carried its
    # every piece.
    spans = result.line.agent_audio_spans()
    assert any(start > 4.6 for start, _ in spans)
    assert all(m in result.line.marks_heard() for m in {m for f in result.line.sent for m in f.marks if m.startswith("t")})


def test_interruption_stops_the_agent_and_the_caller_is_answered():
    lines = [Line(2.5, "Quanto custa o plano?", 1.2), Line(7.0, "Espera, quero falar do boleto.", 1.8)]
    result = run_virtual(lambda: fake_call(lines, RULES, seconds=16))
    record = result.record
    assert [t.caller_text for t in record.turns][:2] == ["Quanto custa o plano?", "Espera, quero falar do boleto."]
    first, second = record.turns[0], record.turns[1]
    assert first.interrupted and first.heard_text and first.heard_text != first.agent_text
    assert LONG_ANSWER.startswith(first.heard_text.rstrip("—").strip()[:20])
    assert second.agent_text == "Claro. Vou ver o seu boleto."
    assert [b.verdict for b in record.barge_ins] == ["interruption"]
    barge = record.barge_ins[0]
    # The caller hears the agent stop within ~100 ms of their onset (fast path: first loud packet).
    loud_after = [f.at for f in result.line.sent if f.at > 7.0 and f.rms > 300 and any(m.startswith("t1") for m in f.marks)]
    assert not loud_after or max(loud_after) < 7.12
    assert barge.paused_at - barge.onset_at < 0.15
    # What the model is told it said is what the caller heard.
    history = result.models.generated[-1].messages
    assert any(m.role == "assistant" and first.heard_text.rstrip("—").strip()[:15] in m.content for m in history)


def test_backchannel_does_not_stop_the_answer():
    lines = [Line(2.5, "Quanto custa o plano?", 1.2), Line(7.5, "uhum", 0.3)]
    result = run_virtual(lambda: fake_call(lines, RULES, seconds=20))
    record = result.record
    assert len(record.turns) == 1
    turn = record.turns[0]
    assert not turn.interrupted and turn.agent_text == LONG_ANSWER
    assert [b.verdict for b in record.barge_ins] == ["backchannel"]
    # Everything synthesised was sent to the caller.
    reply_marks = {m for f in result.line.sent for m in f.marks if m.startswith("t")}
    progress = [result.line.mark_progress(m) for m in reply_marks]
    assert all(p is not None and p.complete for p in progress)


def test_a_misheard_acknowledgement_heard_unsure_does_not_stop_the_answer():
    # Whisper turns a murmured "aham" into unsure words ("Nair dos", mean word probability
    # ~0.16 measured): no stop word, a short burst -> a backchannel, the answer goes on.
    lines = [Line(2.5, "Quanto custa o plano?", 1.2), Line(7.5, "Nair dos", 0.5)]
    result = run_virtual(lambda: fake_call(lines, RULES, seconds=20, stt_word_probability=0.16))
    record = result.record
    assert [b.verdict for b in record.barge_ins] == ["backchannel"], record.barge_ins
    assert len(record.turns) == 1 and not record.turns[0].interrupted
    assert record.turns[0].agent_text == LONG_ANSWER
    # The same words heard sure are content: the caller is answered instead.
    sure = run_virtual(lambda: fake_call(lines, RULES, seconds=20, stt_word_probability=0.9)).record
    assert [b.verdict for b in sure.barge_ins] == ["interruption"], sure.barge_ins


def test_caller_who_goes_on_talking_before_the_answer_is_one_turn():
    # A 0.7 s pause after a complete-looking sentence ends the turn; the caller goes on
    # before any reply audio: one turn holding both parts, one answer.
    settings = ConversationSettings()
    lines = [Line(2.5, "Quero saber do boleto.", 1.2), Line(4.4, "E o horário também.", 1.2)]
    result = run_virtual(lambda: fake_call(lines, RULES, seconds=14, settings=settings, tts_first_delay_s=1.5))
    record = result.record
    assert [t.caller_text for t in record.turns] == ["Quero saber do boleto. E o horário também."]
    assert not record.barge_ins
    # The end of turn the caller talked past is kept, with its rule (a cut-off is traceable).
    assert len(record.resumed_turns) == 1 and record.resumed_turns[0][1]


def test_reply_failure_plays_the_emergency_phrase_and_transfers():
    result = run_virtual(lambda: fake_call([Line(2.5, "O sistema está quebrado?", 1.2)], RULES, seconds=14))
    record = result.record
    assert record.turns[0].error
    assert [c.action for c in result.control.calls] == ["transfer"]
    assert result.control.calls[0].reason.startswith("falha técnica")
    assert record.transfer_reason == "technical: technical_problem"
    marks = result.line.marks_heard()
    emergency = [i for i, m in enumerate(marks) if m.startswith("emergency")]
    assert emergency, marks
    # Nothing of the reply or a filler after the emergency phrase started.
    assert not any(m.startswith(("filler", "t")) for m in marks[emergency[0]:])


def test_transfer_without_words_gets_a_notice_before_the_transfer():
    result = run_virtual(lambda: fake_call([Line(2.5, "Quero falar com um atendente.", 1.4)], RULES, seconds=14))
    record = result.record
    turn = record.turns[0]
    assert "atendimento" in turn.agent_text  # the notice names where the caller goes
    assert [c.action for c in result.control.calls] == ["transfer"]
    assert result.control.calls[0].at >= turn.drained_at - result.line.t0 - 1e-6
    assert record.transferred_to == "atendimento"
    assert turn.tools and turn.tools[0].ok and turn.tools[0].executed_at >= turn.drained_at


def test_own_echo_does_not_interrupt():
    result = run_virtual(lambda: fake_call([Line(2.5, "Quanto custa o plano?", 1.2)], RULES, seconds=20, echo=(0.12, 0.25)))
    record = result.record
    assert len(record.turns) == 1 and not record.turns[0].interrupted
    assert record.turns[0].agent_text == LONG_ANSWER
    assert not [b for b in record.barge_ins if b.verdict == "interruption"]


def test_states_are_announced_in_order():
    result = run_virtual(lambda: fake_call([Line(3.0, "Qual é o horário de atendimento?", 1.6)], RULES, seconds=12))
    states = [s for _at, s in result.states]
    # The greeting (pre-rendered) is no reply: the machine starts when the caller's turn ends.
    assert states == ["thinking", "speaking", "listening", "ended"]
    times = [at for at, _s in result.states]
    assert times == sorted(times) and times[0] > 4.6


def test_slow_speech_synthesis_gets_one_filler_before_the_answer():
    result = run_virtual(lambda: fake_call(
        [Line(3.0, "Qual é o horário de atendimento?", 1.6)], RULES, seconds=14, tts_first_delay_s=1.5))
    turn = result.record.turns[0]
    assert result.record.fillers_played == 1 and turn.filler_text
    marks = result.line.marks_heard()
    first_filler = next(i for i, m in enumerate(marks) if m.startswith("filler"))
    first_reply = next(i for i, m in enumerate(marks) if m.startswith("t"))
    assert first_filler < first_reply
    assert turn.filler_at < turn.first_rtp_at


def test_sequential_baseline_plays_one_whole_reply_without_filler():
    settings = ConversationSettings(pipeline="sequential")
    result = run_virtual(lambda: fake_call(
        [Line(3.0, "Qual é o horário de atendimento?", 1.6)], RULES, seconds=14, settings=settings))
    turn = result.record.turns[0]
    assert turn.agent_text == "Atendemos de segunda a sábado, das oito às vinte horas."
    assert result.models.synthesized[-1] == turn.agent_text  # one TTS request for the whole reply
    assert result.record.fillers_played == 0
    assert turn.endpoint_rule == "vad_silence"


def test_a_reply_that_repeats_itself_is_stopped_and_what_was_said_kept():
    looping = "Tudo bem. " + "Sim sim sim sim. " * 30
    rules = [Rule(match="horário", reply=looping)]
    result = run_virtual(lambda: fake_call([Line(3.0, "Qual é o horário?", 1.2)], rules, seconds=20))
    turn = result.record.turns[0]
    assert turn.reply_loop
    assert turn.agent_text.count("Sim") < 12
    assert not result.record.errors


def test_a_declared_tool_without_a_handler_is_reported_not_faked():
    from theo_ray.turn.settings import DeclaredTool, ToolSettings, TurnSettings

    tools = ToolSettings(tools=[DeclaredTool("consultar_fatura", "Consulta a fatura do cliente.")])
    settings = ConversationSettings(turn=TurnSettings(tools=tools))
    rules = [Rule(match="fatura", reply="Vou consultar.", tool=ToolCall(id="f1", name="consultar_fatura"))]
    result = run_virtual(lambda: fake_call([Line(3.0, "Quero a minha fatura.", 1.2)], rules, seconds=12,
                                           settings=settings))
    execution = result.record.turns[0].tools[0]
    assert execution.call.name == "consultar_fatura" and not execution.ok
    assert any("no handler" in e for e in result.record.errors)


def test_the_call_time_limit_lets_the_answer_finish_then_says_why_and_hangs_up():
    settings = ConversationSettings(max_call_seconds=6.0)
    lines = [Line(3.0, "Qual é o horário de atendimento?", 1.6), Line(9.0, "Quanto custa o plano?", 1.2)]
    result = run_virtual(lambda: fake_call(lines, RULES, seconds=20, settings=settings))
    record = result.record
    # The first answer (still playing at 6 s) is heard whole; the later question gets none.
    assert [t.caller_text for t in record.turns] == ["Qual é o horário de atendimento?"]
    assert not record.turns[0].interrupted
    assert [c.action for c in result.control.calls] == ["hangup"]
    hangup = result.control.calls[0]
    assert hangup.reason == "max_call_seconds" and record.end_reason == "max_call_seconds"
    assert record.limits_hit == {"call_seconds": 1}  # the cap, named in the call record
    marks = result.line.marks_heard()
    assert marks[-1].startswith("prompt")  # the closing phrase is the last thing heard
    assert hangup.at > record.turns[0].drained_at - result.line.t0


def _assert_fell_back_to_a_human(result, stage: str) -> None:
    record = result.record
    assert record.model_timeouts == {stage: 1}
    assert [c.action for c in result.control.calls] == ["transfer"]
    assert record.transfer_reason == "technical: technical_problem"
    marks = result.line.marks_heard()
    assert any(m.startswith("emergency") for m in marks), marks


def test_a_model_that_never_answers_is_cut_off_and_the_caller_goes_to_a_human():
    rules = [Rule(match="horário", reply="", hang=True)]
    settings = ConversationSettings()
    result = run_virtual(lambda: fake_call([Line(3.0, "Qual é o horário?", 1.2)], rules, seconds=25, settings=settings))
    _assert_fell_back_to_a_human(result, "llm_first_token")
    # The emergency phrase starts within the first-token limit of the end of the turn.
    turn = result.record.turns[0]
    emergency_at = next(f.at for f in result.line.sent if any(m.startswith("emergency") for m in f.marks))
    assert emergency_at - (turn.end_of_turn_at - result.line.t0) < settings.timeouts.llm_first_token_s + 1.0


def test_a_voice_that_goes_quiet_mid_sentence_is_cut_off_and_the_caller_goes_to_a_human():
    result = run_virtual(lambda: fake_call(
        [Line(3.0, "Qual é o horário?", 1.2)], RULES, seconds=25, tts_hang_after_chunks=3))
    _assert_fell_back_to_a_human(result, "tts_chunk_gap")


def test_the_retired_model_timeout_key_still_loads_as_the_stt_limit():
    from theo_ray.config import config_from_mapping

    config = config_from_mapping({"conversation": {"model_timeout_s": 9.0}})
    assert config.conversation.timeouts.stt_s == 9.0


def test_a_correction_while_the_filler_plays_merges_with_the_question_and_stops_the_filler():
    lines = [Line(2.5, "Quero cancelar o plano.", 1.2), Line(4.8, "Não, espera, quero falar do boleto.", 1.6)]
    result = run_virtual(lambda: fake_call(lines, RULES, seconds=16, tts_first_delay_s=3.0))
    record = result.record
    assert [t.caller_text for t in record.turns] == ["Quero cancelar o plano. Não, espera, quero falar do boleto."]
    assert not record.barge_ins  # nobody interrupted the agent: it had not answered yet
    filler_frames = [f.at for f in result.line.sent if f.rms > 100 and any(m.startswith("filler") for m in f.marks)]
    assert filler_frames and min(filler_frames) < 4.8, "the filler was playing when the caller went on"
    # It stops within a packet or two, and no filler plays while the caller is talking.
    assert not [at for at in filler_frames if 4.8 + 0.1 < at < 6.4]


def _prompt_starts(result) -> list[float]:
    starts, previous = [], ()
    for f in result.line.sent:
        prompt = tuple(m for m in f.marks if m.startswith("prompt"))
        if prompt and prompt != previous:
            starts.append(f.at)
        previous = prompt
    return starts


def test_a_silent_caller_is_asked_once_then_told_goodbye_and_the_call_ends():
    result = run_virtual(lambda: fake_call([], RULES, seconds=30))
    record = result.record
    prompts = _prompt_starts(result)
    assert len(prompts) == 2 and record.silence_prompts == 2
    spans = result.line.agent_audio_spans()
    greeting_end = spans[0][1]
    # "Você ainda tá aí?" ~6 s after the greeting, the goodbye ~6 s after that reprompt.
    assert 5.9 < prompts[0] - greeting_end < 6.6
    assert [c.action for c in result.control.calls] == ["hangup"]
    assert result.control.calls[0].reason == "caller_silent" and record.end_reason == "caller_silent"
    # Never a stretch of mutual silence over the limit (+ one check period) before the hang-up.
    hangup_at = result.control.calls[0].at
    edges = [0.0] + [t for span in spans for t in span] + [hangup_at]
    gaps = [b - a for a, b in zip(edges[1::2], edges[2::2])]
    assert max(gaps) < 6.0 + 0.5, gaps


def test_a_caller_who_answers_the_reprompt_carries_on():
    lines = [Line(9.0, "Qual é o horário de atendimento?", 1.6)]
    result = run_virtual(lambda: fake_call(lines, RULES, seconds=16))
    record = result.record
    assert record.silence_prompts == 1
    assert [t.caller_text for t in record.turns] == ["Qual é o horário de atendimento?"]
    assert not result.control.calls


def test_silence_handling_can_hand_the_caller_to_a_human_instead():
    from theo_ray.conversation.settings import SilenceSettings

    settings = ConversationSettings(silence=SilenceSettings(reprompt_after_s=4.0, reprompts=2, then="transfer"))
    result = run_virtual(lambda: fake_call([], RULES, seconds=30, settings=settings))
    assert result.record.silence_prompts == 3
    assert [c.action for c in result.control.calls] == ["transfer"]
    assert result.record.transferred_to == "atendimento"


def test_a_call_whose_media_stops_is_hung_up_after_the_limit():
    from theo_ray.conversation.settings import SilenceSettings

    # Silence prompts off, so that only the media watchdog can end this call.
    settings = ConversationSettings(no_media_hangup_s=10.0, silence=SilenceSettings(reprompt_after_s=0))
    result = run_virtual(lambda: fake_call(
        [Line(2.0, "Qual é o horário?", 1.2)], RULES, seconds=30, settings=settings, packets_stop_at_s=8.0))
    assert [c.action for c in result.control.calls] == ["hangup"]
    call = result.control.calls[0]
    assert call.reason == "no_media" and result.record.end_reason == "no_media"
    assert 18.0 <= call.at <= 19.5


def test_a_refused_transfer_is_said_out_loud():
    result = run_virtual(lambda: fake_call(
        [Line(2.5, "Quero falar com um atendente.", 1.4)], RULES, seconds=16, transfer_ok=False))
    record = result.record
    assert [c.action for c in result.control.calls] == ["transfer"]
    assert not record.transferred_to and not record.turns[0].tools[0].ok
    marks = result.line.marks_heard()
    notice = next(i for i, m in enumerate(marks) if m.startswith("notice"))
    assert any(m.startswith("emergency") for m in marks[notice + 1:]), marks  # "Não consegui completar a transferência…"


HANGING_PRIMARY = [Rule(match="horário", reply="", hang=True)]
FALLBACK = [Rule(match="horário", reply="Atendemos das oito às vinte horas.")]


def test_a_hung_model_hands_the_reply_to_the_fallback_model():
    settings = ConversationSettings()
    result = run_virtual(lambda: fake_call([Line(3.0, "Qual é o horário?", 1.2)], HANGING_PRIMARY, seconds=14,
                                           settings=settings, fallback_rules=FALLBACK))
    record = result.record
    turn = record.turns[0]
    assert result.models.generated_by == ["llm", "llm_fallback"]
    assert turn.llm_model == "llm_fallback" and turn.agent_text == "Atendemos das oito às vinte horas."
    assert record.llm_fallbacks == 1 and record.model_timeouts == {"llm_first_token": 1}
    assert not result.control.calls and not turn.error  # answered: no human needed
    # The answer starts within the primary's grace (3 s) plus the fallback's own reply time.
    reply_at = next(f.at for f in result.line.sent if any(m.startswith("t1") for m in f.marks) and f.rms > 300)
    assert reply_at - (turn.end_of_turn_at - result.line.t0) < settings.timeouts.llm_fallback_after_s + 1.5
    # The wait is covered: two different fillers, and no silence over 1.5 s from the end of
    # the caller's speech to the answer.
    assert record.fillers_played == 2
    spoke_until = turn.speech_end_at - result.line.t0
    edges = [spoke_until, *(x for span in result.line.agent_audio_spans() for x in span if spoke_until < x <= reply_at)]
    assert max(b - a for a, b in zip(edges[::2], edges[1::2])) < 1.5, edges


def test_once_its_breaker_opens_the_hung_model_costs_no_more_waiting():
    from theo_ray.circuit_breaker import BreakerBoard
    from theo_ray.conversation.model_client import LocalBreakers

    board = BreakerBoard(failures_to_open=2, open_s=60)
    lines = [Line(2.5 + 7.0 * i, "Qual é o horário?", 1.2) for i in range(3)]
    result = run_virtual(lambda: fake_call(lines, HANGING_PRIMARY, seconds=26, fallback_rules=FALLBACK,
                                           breakers=LocalBreakers(board)))
    # Two timeouts open the primary's breaker; the third question goes straight to the fallback.
    assert result.models.generated_by == ["llm", "llm_fallback", "llm", "llm_fallback", "llm_fallback"]
    assert [t.llm_model for t in result.record.turns] == ["llm_fallback"] * 3
    assert {s.name: s.position for s in board.states()} == {"llm": "open", "llm_fallback": "closed"}
    third = result.record.turns[2]
    assert third.llm_first_token_at - third.end_of_turn_at < 1.0


def test_with_every_model_down_the_caller_hears_the_emergency_phrase_at_once():
    from theo_ray.circuit_breaker import BreakerBoard
    from theo_ray.conversation.model_client import LocalBreakers

    board = BreakerBoard(failures_to_open=1, open_s=60)
    board.record("llm", False)
    board.record("llm_fallback", False)
    result = run_virtual(lambda: fake_call([Line(3.0, "Qual é o horário?", 1.2)], FALLBACK, seconds=12,
                                           fallback_rules=FALLBACK, breakers=LocalBreakers(board)))
    assert result.models.generated_by == []
    assert [c.action for c in result.control.calls] == ["transfer"]
    turn = result.record.turns[0]
    assert "LanguageModelsDown" in turn.error
    emergency_at = next(f.at for f in result.line.sent if any(m.startswith("emergency") for m in f.marks))
    assert emergency_at - (turn.end_of_turn_at - result.line.t0) < 0.5


def test_a_lost_transcription_asks_to_repeat_and_a_second_goes_to_a_human():
    lines = [Line(3.0, "Qual é o horário?", 1.2), Line(9.0, "Qual é o horário de atendimento?", 1.6)]
    result = run_virtual(lambda: fake_call(lines, RULES, seconds=20, stt_down=True))
    record = result.record
    marks = result.line.marks_heard()
    prompts = [m for m in marks if m.startswith("prompt")]
    assert len(prompts) == 1, marks  # "a ligação tá ruim, pode repetir?" once
    assert [c.action for c in result.control.calls] == ["transfer"]
    assert record.transfer_reason == "technical: technical_problem"
    assert ["SpeechToTextFailed" in t.error for t in record.turns] == [True, True]


def test_keys_typed_reach_the_model_as_one_entry_ended_by_the_hash_key():
    rules = [Rule(match="teclado: 12345678900", reply="Obrigada, CPF recebido.")]
    result = run_virtual(lambda: fake_call([], rules, seconds=10, keys=[(3.0, "1234567"), (3.5, "8900#")]))
    record = result.record
    [turn] = record.turns
    assert turn.endpoint_rule == "keypad" and turn.endpoint_reason == "end_key"
    assert turn.caller_text == "Digitei no teclado: 12345678900" and turn.agent_text == "Obrigada, CPF recebido."
    assert record.keys_pressed == 12 and not result.control.calls


def test_a_pause_ends_a_keypad_entry_and_a_lone_zero_goes_to_a_human():
    rules = [Rule(match="teclado: 42", reply="Opção quarenta e dois.")]
    keys = [(2.5, "42"), (9.0, "0")]
    result = run_virtual(lambda: fake_call([], rules, seconds=16, keys=keys))
    record = result.record
    assert [t.caller_text for t in record.turns] == ["Digitei no teclado: 42"]
    assert record.turns[0].endpoint_reason == "pause"
    assert record.keypad_shortcuts == ["0"]
    assert [c.action for c in result.control.calls] == ["transfer"]
    marks = result.line.marks_heard()
    assert any(m.startswith("prompt") for m in marks), marks  # "Certo, vou te passar..." before it


def test_a_key_pressed_over_the_answer_stops_it():
    keys = [(7.0, "0")]
    result = run_virtual(lambda: fake_call([Line(2.5, "Quanto custa o plano?", 1.2)], RULES, seconds=14, keys=keys))
    record = result.record
    assert record.turns[0].interrupted and record.turns[0].heard_text
    assert [c.action for c in result.control.calls] == ["transfer"]
    # Nothing of the answer after the shortcut acted (1 s after the key).
    assert not [f for f in result.line.sent if f.at > 8.3 and any(m.startswith("t1") for m in f.marks)]


def test_an_unsure_transcript_is_not_answered_but_the_caller_asked_to_repeat_once():
    lines = [Line(3.0, "Qual é o horário?", 1.2), Line(9.0, "Qual é o horário de atendimento?", 1.6)]
    result = run_virtual(lambda: fake_call(lines, RULES, seconds=18, stt_logprob=-1.4))
    record = result.record
    first, second = record.turns
    assert first.asked_to_repeat and not first.agent_text and first.caller_logprob == -1.4
    marks = result.line.marks_heard()
    assert sum(1 for m in marks if m.startswith("prompt")) == 1, marks
    # Asked once: the repeated question is answered even though it is no surer.
    assert not second.asked_to_repeat and second.agent_text.startswith("Atendemos")
    assert record.repeat_requests == 1
    assert not any("horário?" == m.content for m in result.models.generated[0].messages if m.role == "user")


CPF_RULES = [
    Rule(match="segunda via", reply="Claro. Qual é o seu CPF?"),
    Rule(match="452", reply="Obrigada, CPF anotado."),
]
DICTATION = [Line(3.0, "Quero a segunda via.", 1.2), Line(8.0, "Meu CPF é 452.318.990-17.", 2.0)]


def test_what_the_agent_asked_goes_to_stt_as_the_hint_with_digits_expected_after_a_cpf_question():
    from theo_ray.conversation.stt_hint import DIGITS_CUE

    always = ConversationSettings(stt_hint="always")
    result = run_virtual(lambda: fake_call(DICTATION, CPF_RULES, seconds=16, settings=always))
    hinted = result.models.hinted
    # The first answer follows the greeting (no question in it: the whole of it).
    assert {h for text, h in hinted if text == "Quero a segunda via."} == {"Olá! Aqui é a Theo."}
    # The CPF, partials and final alike: the agent's last question, then the digits cue.
    assert {h for text, h in hinted if "452" in text} == {f"Qual é o seu CPF? {DIGITS_CUE}"}
    assert result.record.turns[1].agent_text == "Obrigada, CPF anotado."  # heard sure: answered
    assert result.record.readbacks == 0

    off = run_virtual(lambda: fake_call(DICTATION, CPF_RULES, seconds=16, settings=ConversationSettings(stt_hint="off")))
    assert off.models.hinted and {h for _, h in off.models.hinted} == {""}
    digits = run_virtual(lambda: fake_call(DICTATION, CPF_RULES, seconds=16, settings=ConversationSettings(stt_hint="digits")))
    assert {h for text, h in digits.models.hinted if text == "Quero a segunda via."} == {""}  # no digits asked for
    assert {h for text, h in digits.models.hinted if "452" in text} == {f"Qual é o seu CPF? {DIGITS_CUE}"}


def test_an_unsure_dictated_digit_is_read_back_and_a_yes_hands_the_model_the_number():
    lines = [*DICTATION, Line(17.5, "Sim.", 0.5)]
    result = run_virtual(lambda: fake_call(lines, CPF_RULES, seconds=24, settings=ConversationSettings(stt_hint="always"),
                                           stt_digit_probability=0.3))
    record = result.record
    first, readback, confirmed = record.turns
    assert readback.read_back == "45231899017" and record.readbacks == 1
    assert readback.agent_text == "Só confirmando: quatro cinco dois, três um oito, nove nove zero, um sete. Está certo?"
    # The guess never reached the model: it was asked twice (the request, then the confirmed number).
    assert len(result.models.generated) == 2
    assert result.models.generated[1].messages[-1].content == "Meu CPF é 452.318.990-17."
    assert confirmed.readback_confirmed and confirmed.caller_text == "Sim." and confirmed.agent_text == "Obrigada, CPF anotado."
    # The caller's "sim" was decoded with the read-back's question as the hint.
    assert {h for text, h in result.models.hinted if text == "Sim."} == {"Está certo?"}
    assert not record.repeat_requests and not record.errors


def test_a_no_to_a_read_back_asks_for_the_number_again_and_read_backs_stop_after_the_limit():
    settings = ConversationSettings(readback_max_in_a_row=1)
    lines = [*DICTATION, Line(17.5, "Não.", 0.5), Line(22.0, "É 452.318.990-17.", 2.0)]
    result = run_virtual(lambda: fake_call(lines, CPF_RULES, seconds=30, settings=settings, stt_digit_probability=0.3))
    record = result.record
    assert [t.read_back for t in record.turns] == ["", "45231899017", "", ""]
    assert record.turns[2].asked_to_repeat and record.repeat_requests == 1 and record.readbacks == 1
    marks = result.line.marks_heard()
    assert sum(1 for m in marks if m.startswith("prompt")) == 1, marks  # "Pode repetir o número…"
    # The number said again, as unsure, is not read back a second time: the model has it.
    assert record.turns[3].agent_text == "Obrigada, CPF anotado."
    assert result.models.generated[-1].messages[-1].content == "É 452.318.990-17."


def test_read_back_off_and_money_are_answered_as_heard():
    rules = [*CPF_RULES, Rule(match="reais", reply="Vou verificar esse valor.")]
    lines = [Line(3.0, "A conta veio 1290 reais.", 1.5)]
    result = run_virtual(lambda: fake_call(lines, rules, seconds=10, stt_digit_probability=0.3))
    assert result.record.readbacks == 0 and result.record.turns[0].agent_text == "Vou verificar esse valor."
    off = ConversationSettings(readback_word_probability=0.0)
    result = run_virtual(lambda: fake_call(DICTATION, CPF_RULES, seconds=16, settings=off, stt_digit_probability=0.3))
    assert result.record.readbacks == 0 and result.record.turns[1].agent_text == "Obrigada, CPF anotado."
