"""`theo bench stt-window`: what the Whisper encoder window costs and buys.

Transcribes the same caller utterances (the simulator's caller voice, the phrases the other
benchmarks and the scenarios say) with the configured STT model at several encoder windows
(`stt.window_min_s`; 30 = Whisper's own 30 s) and reports, per window, the time per
transcription and the word error rate against the text that was spoken, the audio as a G.711
line carries it. In process, one model per window, one transcription at a time: it measures
the model, not the serving.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import jiwer
import msgspec
import numpy as np

from theo_ray.bench.stats import pct
from theo_ray.config import TheoConfig
from theo_ray.media.codecs import through_codec
from theo_ray.media.resample import resample_once

# What callers say in the benchmarks and the scenarios: questions, dictation, short replies.
CALLER_PHRASES = (
    "Qual é o valor da mensalidade?",
    "Como eu faço para tirar a segunda via do boleto?",
    "Vocês atendem no sábado?",
    "Eu quero saber da minha fatura.",
    "Quero atualizar meu cadastro.",
    "Meu pagamento já foi confirmado?",
    "Me explica como funciona o meu plano.",
    "Quais são os planos de internet de vocês?",
    "Me explica a minha conta, por favor.",
    "Como funciona o plano mais barato?",
    "Do mês de janeiro, por favor.",
    "Tá bom, obrigado, tchau!",
    "Meu CPF é um dois três, quatro cinco seis, sete oito nove, zero zero.",
    "Espera, espera, eu só quero saber o mais barato.",
)


class WindowFigures(msgspec.Struct):
    window_min_s: float
    transcriptions: int
    ms_p50: float
    ms_p95: float
    ms_mean: float
    wer: float
    loops_redecoded: int  # transcripts that looked like a decoding loop, decoded again on 30 s
    hypotheses: list[str]


class SttWindowReport(msgspec.Struct):
    model: str
    phrases: list[str]
    audio_s: list[float]
    windows: list[WindowFigures]


_DIGIT_WORDS = ("zero", "um", "dois", "três", "quatro", "cinco", "seis", "sete", "oito", "nove")


def _words(text: str) -> str:
    """Lower case, no punctuation, digits read one by one ("2,3,00" -> "dois três zero zero"):
    Whisper writes dictated digits as words or as numerals, either is the same for the call
    (the entity and dictation rules read both)."""
    text = re.sub(r"\d", lambda m: f" {_DIGIT_WORDS[int(m.group())]} ", text.lower())
    return " ".join(re.sub(r"[^\w ]", " ", text).split()) or "_"


def _over_g711(pcm24k: np.ndarray) -> np.ndarray:
    """The utterance as the CallActor hands it to STT after a G.711 line: 8 kHz mu-law, then
    16 kHz float."""
    carried = through_codec(pcm24k, 24000, "PCMU")
    return resample_once(carried, 24000, 16000).astype(np.float32) / 32768.0


async def _render(config: TheoConfig, phrases: tuple[str, ...]) -> list[np.ndarray]:
    from theo_ray.bench.sim_calls import caller_voice

    voice = caller_voice(config)
    return [_over_g711(await voice.speak(text)) for text in phrases]


def run_stt_window_bench(
    config: TheoConfig, windows: list[float], repeats: int = 2, progress=print, phrases: tuple[str, ...] = CALLER_PHRASES
) -> SttWindowReport:
    from theo_ray.deployments.backends.faster_whisper_stt import FasterWhisperBackend

    audios = asyncio.run(_render(config, phrases))
    references = [_words(t) for t in phrases]
    figures = []
    model_path = ""
    for window in windows:
        settings = msgspec.structs.replace(config.stt, window_min_s=window)
        backend = FasterWhisperBackend(settings, Path(config.paths.model_cache).expanduser())
        model_path = backend.model_path
        backend.transcribe_blocking(audios[0], settings.language, "", False)  # warm-up
        times, hypotheses = [], []
        for audio in audios:
            for _ in range(repeats):
                started = time.perf_counter()
                segments = backend.transcribe_blocking(audio, settings.language, "", False)
                text = " ".join(s.text for s in segments)
                times.append((time.perf_counter() - started) * 1000)
            hypotheses.append(text.strip())
        wer = jiwer.wer(references, [_words(h) for h in hypotheses])
        figures.append(WindowFigures(window, len(times), pct(times, 50), pct(times, 95), float(np.mean(times)), wer,
                                     backend.loops_redecoded, hypotheses))
        progress(f"  window ≥ {window:g} s: {pct(times, 50):.0f} ms p50, WER {wer:.3f}")
    return SttWindowReport(model_path, list(phrases), [round(len(a) / 16000, 2) for a in audios], figures)
