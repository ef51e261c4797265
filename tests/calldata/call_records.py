"""Realistic call records for the call-data tests, built from Theo's own record types.

`demo_call()` is the README's demo conversation (Conecta Telecom, an invoice question) as
the turn machine records it: monotonic instants, an interrupted reply with what the caller
heard, a backchannel, a tool call, a CPF dictated (for redaction), a model timeout. The
numbers are the demo table's order of magnitude; nothing here is a test double of Theo.
"""

from __future__ import annotations

from theo_ray.conversation.records import BargeInRecord, CallRecord, ToolExecution, TurnRecord
from theo_ray.media.media_stats import MediaStats
from theo_ray.messages import ToolCall

T0 = 1000.0  # the CallActor's monotonic clock at the call's start


def _turn(index: int, at: float, caller: str, agent: str, **extra) -> TurnRecord:
    turn = TurnRecord(index=index, caller_text=caller, agent_text=agent, endpoint_rule=extra.pop("rule", "base"),
                      endpoint_reason=extra.pop("reason", "silence 600 ms"))
    turn.speech_end_at = at
    turn.end_of_turn_at = at + 0.66
    turn.stt_final_at = at + 0.70
    turn.stt_ms = 320.0
    turn.llm_first_token_at = at + 1.35
    turn.llm_first_sentence_at = at + 2.10
    turn.tts_first_chunk_at = at + 3.20
    turn.first_audio_enqueued_at = at + 3.22
    turn.first_rtp_at = at + 3.24
    turn.filler_at = at + 0.80
    turn.filler_text = "Deixa eu ver aqui."
    turn.drained_at = at + 7.5
    turn.reply_tokens = 24
    for key, value in extra.items():
        setattr(turn, key, value)
    return turn


def demo_call(session_id: str = "sess-demo-0001", turns: int = 3) -> CallRecord:
    record = CallRecord(session_id=session_id, caller_id="+5511912345678", started_at=T0, trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
                        greeting_text="Olá, aqui é o Theo da Conecta Telecom. Como posso te ajudar?")
    record.turns = [
        _turn(1, T0 + 5.0, "Oi, boa tarde. Eu quero saber o valor da minha fatura.",
              "Claro! A fatura de janeiro é 89 reais e 90 centavos. Quer que eu envie o boleto por SMS?",
              interrupted=True, heard_text="Claro! A fatura de janeiro é 89 reais—"),
        _turn(2, T0 + 18.0, "Meu CPF é 123.456.789-09, pode mandar no 11 91234-5678.",
              "Pronto, enviei o boleto para o seu celular.", rule="dictation", reason="digits: waited 1600 ms",
              tools=[ToolExecution(call=ToolCall(id="c1", name="send_invoice_sms", arguments={"cpf": "123.456.789-09", "month": "janeiro"}),
                                   drained_at=T0 + 25.0, executed_at=T0 + 25.05, ok=True, detail="sent")]),
        _turn(3, T0 + 30.0, "Tá bom, muito obrigado. Tchau.", "Eu que agradeço. Tchau!"),
    ][:turns]
    record.barge_ins = [
        BargeInRecord(onset_at=T0 + 9.6, paused_at=T0 + 9.62, verdict="interruption", decided_at=T0 + 9.9,
                      heard="Claro! A fatura de janeiro é 89 reais—", caller_text="de janeiro"),
        BargeInRecord(onset_at=T0 + 22.0, paused_at=T0 + 22.02, verdict="backchannel", decided_at=T0 + 22.3),
    ]
    record.backchannels_played = 1
    record.fillers_played = 3
    record.early_pauses = 2
    record.model_timeouts = {"llm_first_token": 1}
    record.ended_at = T0 + 40.0
    record.end_reason = "caller_hangup"
    return record


def demo_media() -> MediaStats:
    return MediaStats(codec="G722", payload_type=9, packets_in=2000, packets_out=1990, expected=2004, lost=4,
                      jitter_mean_ms=3.2, concealed_frames=4, mos=4.31, rtt_ms=12.5, remote_fraction_lost=0.0,
                      remote_jitter_ms=2.1, send_interval_error_p99_ms=1.4)
