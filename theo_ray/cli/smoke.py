"""`theo smoke`: one round trip through the three deployments, printed.

Text -> TextToSpeech -> (resampled to 16 kHz) -> SpeechToText -> LanguageModel reply.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np
import soxr

from theo_ray.cli.console import say
from theo_ray.config import TheoConfig
from theo_ray.messages import ChatMessage, GenerateRequest, SynthesizeRequest, TranscribeRequest

SMOKE_TEXT = "Olá, eu gostaria de saber o valor da minha fatura de janeiro."


async def round_trip(handles, text: str = SMOKE_TEXT) -> dict[str, float | str]:
    started = time.perf_counter()
    chunks = [c async for c in handles.tts.options(stream=True).synthesize.remote(SynthesizeRequest(text=text))]
    tts_s = time.perf_counter() - started
    rate = chunks[0].sample_rate
    pcm = np.frombuffer(b"".join(c.pcm for c in chunks), dtype="<i2")
    audio16 = soxr.resample(pcm, rate, 16000).astype(np.int16)
    started = time.perf_counter()
    segments = [
        s async for s in handles.stt.options(stream=True).transcribe.remote(TranscribeRequest(audio=audio16.tobytes()))
    ]
    stt_s = time.perf_counter() - started
    heard = " ".join(s.text for s in segments).strip()
    started = time.perf_counter()
    reply = ""
    request = GenerateRequest(
        messages=[
            ChatMessage(role="system", content="Você é a Theo, atendente por telefone. Responda em português, curto."),
            ChatMessage(role="user", content=heard),
        ],
        max_tokens=60,
    )
    async for delta in handles.llm.options(stream=True).generate.remote(request):
        reply += delta.text
    llm_s = time.perf_counter() - started
    return {
        "text": text, "audio_seconds": len(pcm) / rate, "tts_s": tts_s,
        "heard": heard, "stt_s": stt_s, "reply": reply.strip(), "llm_s": llm_s,
    }


def cmd_smoke(config: TheoConfig, args: argparse.Namespace) -> int:
    from theo_ray.runtime.ray_cluster import start_or_join
    from theo_ray.runtime.serve_apps import ensure_models_deployed

    start_or_join(config.ray, say)
    handles = ensure_models_deployed(config, say)
    result = asyncio.run(round_trip(handles))
    say(f"[bold]text[/bold]   {result['text']}")
    say(f"[bold]speech[/bold] {result['audio_seconds']:.2f} s of audio in {result['tts_s']:.2f} s (TextToSpeech)")
    say(f"[bold]heard[/bold]  {result['heard']}  ({result['stt_s']:.2f} s, SpeechToText)")
    say(f"[bold]reply[/bold]  {result['reply']}  ({result['llm_s']:.2f} s, LanguageModel)")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("smoke", help="one text->speech->text->LLM round trip").set_defaults(run=cmd_smoke)
