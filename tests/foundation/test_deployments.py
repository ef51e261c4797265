"""The three Serve deployments with the real packaged models, through DeploymentHandles."""

from __future__ import annotations

import asyncio
import time

import jiwer
import numpy as np
import pytest
import soxr

from theo_ray.bench.models_bench import measure_cancel_to_abort
from theo_ray.errors import InvalidRequest
from theo_ray.messages import (
    ChatMessage,
    GenerateRequest,
    SynthesizeRequest,
    ToolSchema,
    TranscribeRequest,
)

pytestmark = pytest.mark.slow

PHRASES = [
    "Eu quero saber o valor da minha fatura.",
    "A minha internet está muito lenta desde ontem.",
    "Pode me transferir para um atendente, por favor?",
    "Eu gostaria de cancelar o meu plano.",
    "Qual é o horário de atendimento da loja?",
    "Meu nome é Maria da Silva.",
    "Eu paguei a conta na semana passada.",
    "O boleto chegou com o valor errado.",
    "Vocês aceitam pagamento por pix?",
    "Obrigado pela ajuda, tenha um bom dia.",
    "Eu preciso da segunda via da fatura.",
]


def _normalise(text: str) -> str:
    return jiwer.RemovePunctuation()(text.lower()).strip()


async def _speak(handles, text: str) -> tuple[np.ndarray, list[float], float]:
    started = time.perf_counter()
    arrivals, pcm, rate = [], [], 0
    async for chunk in handles.tts.options(stream=True).synthesize.remote(SynthesizeRequest(text=text)):
        arrivals.append(time.perf_counter() - started)
        pcm.append(chunk.pcm)
        rate = chunk.sample_rate
    return np.frombuffer(b"".join(pcm), dtype="<i2"), arrivals, rate


async def _transcribe(handles, audio16: np.ndarray) -> str:
    segments = [
        s async for s in handles.stt.options(stream=True).transcribe.remote(TranscribeRequest(audio=audio16.tobytes()))
    ]
    assert all(w.start <= w.end for s in segments for w in s.words)
    return " ".join(s.text for s in segments)


async def test_stt_transcribes_our_own_speech_within_10_percent_wer(model_handles):
    references, hypotheses = [], []
    for phrase in PHRASES:
        audio, _, rate = await _speak(model_handles, phrase)
        audio16 = soxr.resample(audio, rate, 16000).astype(np.int16)
        references.append(_normalise(phrase))
        hypotheses.append(_normalise(await _transcribe(model_handles, audio16)))
    wer = jiwer.wer(references, hypotheses)
    print(f"WER over {len(PHRASES)} phrases: {wer:.3f}")
    assert wer <= 0.10, list(zip(references, hypotheses))


async def test_stt_window_grows_with_audio_longer_than_the_minimum(model_handles):
    """Four phrases with 1 s gaps (~15 s, past the 10 s minimum encoder window): every word of
    the last phrase is still heard, so the window follows the audio instead of cutting it."""
    gap = np.zeros(16000, np.int16)
    parts = []
    for phrase in PHRASES[:4]:
        audio, _, rate = await _speak(model_handles, phrase)
        parts += [soxr.resample(audio, rate, 16000).astype(np.int16), gap]
    audio16 = np.concatenate(parts)
    assert len(audio16) / 16000 > 12.0
    heard = _normalise(await _transcribe(model_handles, audio16))
    reference = _normalise(" ".join(PHRASES[:4]))
    wer = jiwer.wer(reference, heard)
    assert wer <= 0.15, heard
    assert "desde ontem" in heard and "cancelar" in heard, heard


async def test_stt_segments_carry_word_timestamps(model_handles):
    audio, _, rate = await _speak(model_handles, "Bom dia, meu nome é João.")
    segments = [
        s
        async for s in model_handles.stt.options(stream=True).transcribe.remote(
            TranscribeRequest(audio=soxr.resample(audio, rate, 16000).astype(np.int16).tobytes())
        )
    ]
    words = [w for s in segments for w in s.words]
    assert words and all(0.0 <= w.probability <= 1.0 for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)


async def test_tts_streams_first_chunk_before_the_whole_text(model_handles):
    text = "Primeira frase curta. Agora uma segunda frase um pouco mais longa que a primeira. E a terceira."
    audio, arrivals, rate = await _speak(model_handles, text)
    assert rate == 24000 and len(audio) > rate  # more than a second of speech
    assert len(arrivals) >= 4  # three sentences + the final marker
    assert arrivals[0] < 0.6 * arrivals[-1]


async def test_llm_streams_typed_deltas(model_handles):
    request = GenerateRequest(
        messages=[ChatMessage(role="system", content="Responda em português."), ChatMessage(role="user", content="Oi!")],
        tools=[ToolSchema(name="end_call", description="encerra", parameters={"type": "object", "properties": {}})],
        max_tokens=24,
    )
    deltas = [d async for d in model_handles.llm.options(stream=True).generate.remote(request)]
    assert len(deltas) >= 3 and deltas[-1].finish_reason in ("stop", "length")
    assert deltas[-1].completion_tokens > 0 and deltas[-1].prompt_tokens > 0
    assert "".join(d.text for d in deltas).strip()


async def test_llm_min_tokens_holds_the_end_back(model_handles):
    """`min_tokens` (the pipeline bench's fixed reply length) reaches the engine: the reply
    runs to at least that many tokens even where the model would have stopped."""
    request = GenerateRequest(messages=[ChatMessage(role="user", content="Diga só: oi.")], max_tokens=40, min_tokens=30)
    deltas = [d async for d in model_handles.llm.options(stream=True).generate.remote(request)]
    assert deltas[-1].completion_tokens >= 30


async def test_llm_cancel_aborts_in_the_engine(model_handles):
    before = await model_handles.llm.stats.remote()
    ms = await measure_cancel_to_abort(model_handles, "test-cancel")
    after = await model_handles.llm.stats.remote()
    assert after.aborted == before.aborted + 1 and after.last_aborted_request_id.startswith("test-cancel")
    assert ms >= 0
    # The engine freed the slot: nothing left unfinished once the abort went through.
    for _ in range(100):
        stats = await model_handles.llm.stats.remote()
        if stats.engine_unfinished == 0 and stats.active == 0:
            break
        await asyncio.sleep(0.05)
    assert stats.engine_unfinished == 0 and stats.active == 0


async def test_scripted_backend_emits_tool_calls_through_the_same_path(scripted_llm):
    request = GenerateRequest(messages=[ChatMessage(role="user", content="quero falar com um atendente")])
    deltas = [d async for d in scripted_llm.options(stream=True).generate.remote(request)]
    calls = [d.tool_call for d in deltas if d.tool_call]
    spoken = "".join(d.text for d in deltas)
    assert [c.name for c in calls] == ["transfer_call"] and calls[0].arguments["destination"] == "atendimento"
    assert "tool_call" not in spoken and "transferir" in spoken


BAD_STT = [
    TranscribeRequest(audio=b""),
    TranscribeRequest(audio=b"\x00\x01\x02"),
    TranscribeRequest(audio=b"\x00\x00" * 1600, sample_rate=8000),
    TranscribeRequest(audio=b"\x00\x00" * (16000 * 121)),
]
BAD_LLM = [
    GenerateRequest(messages=[]),
    GenerateRequest(messages=[ChatMessage(role="assistant", content="oi")]),
    GenerateRequest(messages=[ChatMessage(role="user", content="oi")], max_tokens=0),
    GenerateRequest(messages=[ChatMessage(role="user", content="oi")], max_tokens=8, min_tokens=9),
    GenerateRequest(
        messages=[ChatMessage(role="user", content="oi")],
        tools=[ToolSchema(name="bad name!", description="x", parameters={"type": "object", "properties": {}})],
    ),
    GenerateRequest(
        messages=[ChatMessage(role="user", content="oi")],
        tools=[ToolSchema(name="t", description="x", parameters={"type": "array"})],
    ),
]
BAD_TTS = [SynthesizeRequest(text=""), SynthesizeRequest(text="   "), SynthesizeRequest(text="a" * 20_000),
           SynthesizeRequest(text="oi", voice="no-such-voice"), SynthesizeRequest(text="oi", speed=9.0)]


async def _expect_invalid(stream) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as err:
        async for _ in stream:
            pass
    return err.value


async def test_bad_input_gets_a_typed_error_and_replicas_stay_healthy(model_handles):
    for bad in BAD_STT:
        await _expect_invalid(model_handles.stt.options(stream=True).transcribe.remote(bad))
    for bad in BAD_LLM:
        await _expect_invalid(model_handles.llm.options(stream=True).generate.remote(bad))
    for bad in BAD_TTS:
        await _expect_invalid(model_handles.tts.options(stream=True).synthesize.remote(bad))
    # NaN audio cannot be expressed as int16 PCM; it is rejected where float audio enters.
    from theo_ray.deployments.validation import float_audio_from_request

    with pytest.raises(InvalidRequest, match="NaN"):
        float_audio_from_request(np.array([0.0, np.nan], dtype=np.float32))
    # Still serving: one good request through each deployment.
    audio, _, rate = await _speak(model_handles, "Tudo certo.")
    assert await _transcribe(model_handles, soxr.resample(audio, rate, 16000).astype(np.int16))
    ok = GenerateRequest(messages=[ChatMessage(role="user", content="Oi")], max_tokens=4)
    assert [d async for d in model_handles.llm.options(stream=True).generate.remote(ok)][-1].finish_reason
