"""`theo bench models`: per model, load time, real-time factor, first chunk/token, tokens/s,
the LLM's cancel-to-abort time (barge-in path), and the agent voice's intelligibility (the
STT deployment's WER on the TTS audio carried over an 8 kHz G.711 line, as a caller's phone
would hear it), through the real Serve deployments."""

from __future__ import annotations

import asyncio
import time

import msgspec
import numpy as np

from theo_ray.bench.stats import pct
from theo_ray.media.codecs import through_codec
from theo_ray.media.resample import resample_once
from theo_ray.messages import ChatMessage, GenerateRequest, SynthesizeRequest, TranscribeRequest
from theo_ray.sim.intelligibility import Intelligibility, intelligibility

BENCH_TEXTS = [
    "Bom dia! Aqui é a Theo. Como posso te ajudar?",
    "Sua fatura de janeiro venceu no dia dez. O valor é de cento e vinte reais.",
    "Vou te passar para o suporte técnico. Eles resolvem isso rapidinho, tá?",
    "Pode me confirmar o seu CPF, por favor? Só os números.",
    "Entendi. Então você quer mudar o seu plano para o de cem megas.",
]
LLM_PROMPTS = [
    "Quero saber o valor da minha fatura.",
    "Minha internet caiu desde ontem.",
    "Qual o horário de atendimento de vocês?",
    "Quero cancelar meu plano.",
    "Vocês aceitam pix?",
]


class ModelFigures(msgspec.Struct):
    model: str
    backend: str
    load_s: float
    trials: int
    first_chunk_ms_p50: float = float("nan")
    first_chunk_ms_p95: float = float("nan")
    rtf_p50: float = float("nan")
    tokens_per_s_p50: float = float("nan")
    cancel_to_abort_ms_p50: float = float("nan")
    cancel_to_abort_ms_max: float = float("nan")


class ModelsBenchReport(msgspec.Struct):
    stt: ModelFigures
    llm: ModelFigures
    tts: ModelFigures
    # The TTS voice heard through G.711 by the STT model (BENCH_TEXTS as the reference).
    voice_intelligibility: Intelligibility | None = None


async def _bench_tts(handles, trials: int) -> tuple[ModelFigures, list[np.ndarray]]:
    info = await handles.tts.info.remote()
    first, rtf, audios = [], [], []
    for n in range(trials):
        text = BENCH_TEXTS[n % len(BENCH_TEXTS)]
        started = time.perf_counter()
        pcm, first_at = [], None
        async for chunk in handles.tts.options(stream=True).synthesize.remote(SynthesizeRequest(text=text)):
            if first_at is None and chunk.pcm:
                first_at = time.perf_counter() - started
            pcm.append(chunk.pcm)
        total = time.perf_counter() - started
        audio = np.frombuffer(b"".join(pcm), dtype="<i2")
        first.append(first_at * 1000)
        rtf.append(total / (len(audio) / info.sample_rate))
        # What a phone line delivers: 8 kHz mu-law, then the 16 kHz the STT model takes.
        carried = through_codec(audio, info.sample_rate, "PCMU")
        audios.append(resample_once(carried, info.sample_rate, 16000).astype(np.int16))
    return (
        ModelFigures(
            model=info.model, backend=info.backend, load_s=info.load_seconds, trials=trials,
            first_chunk_ms_p50=pct(first, 50), first_chunk_ms_p95=pct(first, 95), rtf_p50=pct(rtf, 50),
        ),
        audios,
    )


async def _bench_stt(handles, audios: list[np.ndarray]) -> tuple[ModelFigures, list[str]]:
    info = await handles.stt.info.remote()
    first, rtf, heard = [], [], []
    for audio in audios:
        started = time.perf_counter()
        first_at, text = None, []
        async for segment in handles.stt.options(stream=True).transcribe.remote(TranscribeRequest(audio=audio.tobytes())):
            if first_at is None:
                first_at = time.perf_counter() - started
            text.append(segment.text)
        total = time.perf_counter() - started
        first.append((first_at or total) * 1000)
        rtf.append(total / (len(audio) / 16000))
        heard.append(" ".join(text))
    figures = ModelFigures(
        model=info.model, backend=info.backend, load_s=info.load_seconds, trials=len(audios),
        first_chunk_ms_p50=pct(first, 50), first_chunk_ms_p95=pct(first, 95), rtf_p50=pct(rtf, 50),
    )
    return figures, heard


def _request(prompt: str, max_tokens: int, request_id: str) -> GenerateRequest:
    return GenerateRequest(
        messages=[
            ChatMessage(role="system", content="Você é a Theo, atendente por telefone. Responda curto."),
            ChatMessage(role="user", content=prompt),
        ],
        max_tokens=max_tokens,
        temperature=0.0,
        request_id=request_id,
    )


async def measure_cancel_to_abort(handles, request_id: str, timeout_s: float = 10.0) -> float:
    """Cancel a running stream after its first token; ms until the replica freed the request."""
    before = await handles.llm.stats.remote()
    stream = handles.llm.options(stream=True).generate.remote(_request(LLM_PROMPTS[0], 400, request_id))
    async for _ in stream:
        break
    cancelled_at = time.time()
    stream.cancel()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = await handles.llm.stats.remote()
        if stats.aborted > before.aborted and stats.last_aborted_request_id.startswith(request_id):
            return (stats.last_abort_done_at - cancelled_at) * 1000
        await asyncio.sleep(0.005)
    raise TimeoutError(f"the LanguageModel did not abort {request_id} within {timeout_s} s")


async def _bench_llm(handles, trials: int) -> ModelFigures:
    info = await handles.llm.info.remote()
    first, rates, aborts = [], [], []
    for n in range(trials):
        started = time.perf_counter()
        first_at, tokens = None, 0
        async for delta in handles.llm.options(stream=True).generate.remote(
            _request(LLM_PROMPTS[n % len(LLM_PROMPTS)], 64, f"bench-{n}")
        ):
            if first_at is None and delta.text:
                first_at = time.perf_counter() - started
            if delta.finish_reason:
                tokens = delta.completion_tokens
        total = time.perf_counter() - started
        first.append((first_at or total) * 1000)
        if tokens > 1 and first_at is not None and total > first_at:
            rates.append((tokens - 1) / (total - first_at))
        aborts.append(await measure_cancel_to_abort(handles, f"bench-cancel-{n}"))
    return ModelFigures(
        model=info.model, backend=info.backend, load_s=info.load_seconds, trials=trials,
        first_chunk_ms_p50=pct(first, 50), first_chunk_ms_p95=pct(first, 95),
        tokens_per_s_p50=pct(rates, 50), cancel_to_abort_ms_p50=pct(aborts, 50), cancel_to_abort_ms_max=max(aborts),
    )


async def run_models_bench(handles, trials: int = 5) -> ModelsBenchReport:
    tts, audios = await _bench_tts(handles, trials)
    stt, heard = await _bench_stt(handles, audios)
    llm = await _bench_llm(handles, trials)
    meant = [BENCH_TEXTS[n % len(BENCH_TEXTS)] for n in range(trials)]
    return ModelsBenchReport(stt=stt, llm=llm, tts=tts, voice_intelligibility=intelligibility(meant, heard))
