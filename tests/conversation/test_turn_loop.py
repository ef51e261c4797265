"""The turn loop end to end: real STT/TTS deployments, the real CallActor and media, a
caller on a real RtpSession; the LLM is the scripted test double where behaviour matters
(tool calls, a long answer to interrupt). Timing targets are benchmarks, not asserted here."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from tests.conversation.harness import AgentCall

pytestmark = pytest.mark.slow


async def test_three_turn_conversation_with_memory(theo_config, scripted_handles):
    lines = ("Oi, meu nome é Maria e eu quero saber da minha fatura.",
             "Do mês de janeiro, por favor.", "Tá bom, obrigada pela ajuda.")
    async with AgentCall(theo_config, scripted_handles) as call:
        await call.prepare_speech(*lines)
        await call.wait_agent_start(0)  # greeting
        await call.wait_agent_quiet()
        for n, text in enumerate(lines, start=1):
            await call.say(text)
            await call.wait_reply(n)
        record = await call.wait_turns(3)
        texts = [t.caller_text.lower() for t in record.turns]
        # Whisper base may spell it "janero"; the follow-up itself never says "fatura".
        assert "fatura" in texts[0] and re.search(r"jan\w*ro", texts[1]), texts
        assert "janeiro" in record.turns[1].agent_text and "cento e vinte" in record.turns[1].agent_text
        assert all(t.first_rtp_at > t.end_of_turn_at >= t.speech_end_at > 0 for t in record.turns[:2])
        assert not record.errors and not any(t.interrupted for t in record.turns)
        # The name said in turn 1 is in the prompt the model saw on turn 3.
        prompts = await scripted_handles.llm.recent_prompts.remote(f"{call.session_id}-t3")
        assert prompts and re.search(r"maria", prompts[-1][1], re.IGNORECASE), prompts


FIRST_PIECE = "Olha, vou te explicar direitinho como funciona."  # the scripted long answer's


@pytest.mark.parametrize("talk_after_s", [1.0, 5.0], ids=["in-first-piece", "after-first-piece"])
async def test_barge_in_stops_audio_and_memory_keeps_what_was_heard(theo_config, scripted_handles, talk_after_s):
    """At 1 s the caller cuts the first sentence; at 5 s the first sentence (about 2.5 s in the
    pf_dora voice) was heard whole and played out before the barge-in, so it must still be in
    the heard text. The barge-in itself takes ~0.5 s of caller speech to confirm."""
    async with AgentCall(theo_config, scripted_handles) as call:
        await call.wait_agent_start(0)
        await call.wait_agent_quiet()
        await call.prepare_speech("Me explica como funciona o meu plano de internet.",
                                  "Espera, espera, eu quero falar de outra coisa agora.")
        await call.say("Me explica como funciona o meu plano de internet.")
        agent_started = await call.wait_reply_audio(1)
        await asyncio.sleep(talk_after_s)
        interrupt_at = time.monotonic()
        await call.say("Espera, espera, eu quero falar de outra coisa agora.")
        record = await call.wait_turns(2)
        barges = [b for b in record.barge_ins if b.verdict == "interruption"]
        assert barges, record.barge_ins
        turn = record.turns[0]
        assert turn.interrupted and turn.heard_text.endswith("—")
        heard = turn.heard_text.rstrip("—").strip()
        assert heard and turn.agent_text.startswith(heard[: max(1, len(heard) - 3)])
        assert len(heard) < len(turn.agent_text)
        if talk_after_s >= 5.0:
            assert heard.startswith(FIRST_PIECE) and len(heard) > len(FIRST_PIECE), heard
        else:
            assert len(heard) < len(FIRST_PIECE), heard
        # Agent audio at the caller stopped soon after the caller started talking.
        after = [at for at in call.agent_active_since(interrupt_at + 0.6)]
        still = [at for at in after if at < interrupt_at + 2.0]
        assert not still, f"agent audio continued {still[-1] - interrupt_at:.2f}s after the barge-in"
        assert agent_started < interrupt_at


async def test_own_echo_does_not_interrupt(theo_config, scripted_handles):
    async with AgentCall(theo_config, scripted_handles) as call:
        await call.wait_agent_start(0)
        await call.wait_agent_quiet()
        await call.prepare_speech("Me explica como funciona o meu plano de internet.")
        await call.say("Me explica como funciona o meu plano de internet.")
        # From now on everything the caller hears goes back to Theo at -10 dB, 60 ms later.
        call.echo_back = (0.060, 10 ** (-10 / 20))
        record = await call.wait_reply(1)
        assert not record.turns[0].interrupted
        assert [b for b in record.barge_ins if b.verdict == "interruption"] == []
        assert "desconto" in record.turns[0].agent_text  # the whole long answer was spoken


async def test_backchannel_does_not_end_the_agent_turn(theo_config, scripted_handles):
    """A short "sei" over the agent does not end its turn. (Kokoro's "uhum" is heard by
    Whisper as anything from "Wond" to "o que?", so the test uses "sei".)"""
    async with AgentCall(theo_config, scripted_handles) as call:
        await call.wait_agent_start(0)
        await call.wait_agent_quiet()
        await call.prepare_speech("Me explica como funciona o meu plano de internet.", "Sei.")
        await call.say("Me explica como funciona o meu plano de internet.")
        await call.wait_reply_audio(1)
        await asyncio.sleep(2.0)
        await call.say("Sei.")
        record = await call.wait_reply(1)
        assert not record.turns[0].interrupted, record.barge_ins
        assert "desconto" in record.turns[0].agent_text


async def test_cpf_dictated_with_pauses_is_one_turn(theo_config, scripted_handles):
    async with AgentCall(theo_config, scripted_handles) as call:
        await call.wait_agent_start(0)
        await call.wait_agent_quiet()
        await call.prepare_speech("Meu CPF é um dois três", "quatro cinco seis", "sete oito nove", "zero nove.")
        await call.say("Meu CPF é um dois três", pause_after_ms=1200)
        await call.say("quatro cinco seis", pause_after_ms=1200)
        await call.say("sete oito nove", pause_after_ms=1200)
        spoken = await call.say("zero nove.")
        await call.wait_reply(1)
        record = await call.wait_turns(1)
        assert len(record.turns) == 1
        text = record.turns[0].caller_text.lower()
        digits = re.findall(r"\b(zero|um|dois|tr[eê]s|quatro|cinco|seis|sete|oito|nove)\b|\d", text)
        # All four groups are in the one turn (Whisper may mishear a digit, not drop a group).
        assert len(digits) >= 10 and ("zero" in text or "0" in text), record.turns[0].caller_text
        assert record.turns[0].end_of_turn_at > spoken - 0.5  # not cut before the last group


async def test_sequential_baseline_transcribes_after_the_turn_and_plays_one_whole_reply(theo_config, scripted_handles):
    """The batch baseline `theo bench pipeline` compares against: the turn ends on VAD silence
    alone, STT runs only after that, the whole reply is synthesised before its first packet."""
    import msgspec

    line = "Oi, eu quero saber da minha fatura."
    config = msgspec.structs.replace(
        theo_config, conversation=msgspec.structs.replace(theo_config.conversation, pipeline="sequential")
    )
    async with AgentCall(config, scripted_handles) as call:
        record = await call.ask_after_greeting(line)
        turn = record.turns[0]
        assert "fatura" in turn.caller_text.lower(), turn.caller_text
        assert turn.endpoint_rule == "vad_silence"
        silence_ms = (turn.end_of_turn_at - turn.speech_end_at) * 1000.0
        assert silence_ms >= config.conversation.turn.endpointing.base_silence_ms - 1.0
        # STT started at the end of the turn: its whole compute lies after it.
        assert turn.stt_final_at > turn.end_of_turn_at and turn.stt_ms > 50.0
        assert turn.first_rtp_at > turn.tts_first_chunk_at > turn.llm_first_sentence_at >= turn.llm_first_token_at
        assert turn.agent_text and turn.reply_tokens > 0 and not record.errors


async def test_a_reply_stuck_in_a_loop_is_stopped(theo_config, scripted_handles):
    """Bad model output: the scripted reply repeats "Colas," 30 times after its first sentence
    (as SmolLM2 did in `theo demo`). The turn loop stops generating once the loop is plain,
    speaks only what came before it plus the few repeats already cut into pieces, and counts
    it on the turn record."""
    line = "Qual é o meu saldo?"
    async with AgentCall(theo_config, scripted_handles) as call:
        record = await call.ask_after_greeting(line)
        turn = record.turns[0]
        assert "saldo" in turn.caller_text.lower(), turn.caller_text
        assert turn.reply_loop == "colas", turn
        assert turn.agent_text.startswith("O seu saldo é de cinquenta reais."), turn.agent_text
        assert turn.agent_text.count("Colas") < 8, turn.agent_text
        assert not record.errors
