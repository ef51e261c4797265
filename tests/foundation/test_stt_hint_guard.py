"""A hinted decode that stops before the caller did is decoded again without the hint.

Found by `theo bench turn-taking`: prompted with the agent's greeting question, Whisper base
transcribed an 18 s complaint (four sentences, 0.9-1.3 s pauses) as its first sentence only,
and the caller's problem never reached the model. Real packaged Whisper, real Kokoro voice
over G.711 (the STT bench's renderer)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np

from theo_ray.config import config_from_mapping
from theo_ray.deployments.backends.faster_whisper_stt import speech_left_out

PARTS = [
    ("Olha, eu tô ligando porque a minha internet caiu de novo ontem à noite.", 1.1),
    ("Já é a terceira vez nessa semana, e eu trabalho de casa.", 1.3),
    ("Eu reiniciei o modem, tirei da tomada, fiz tudo que o site manda.", 0.9),
    ("E nada resolve. Eu quero abrir um chamado.", 0.0),
]


def test_speech_after_the_last_segment_is_noticed():
    rate = 16000
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate)).astype(np.float32)
    quiet = np.zeros(rate, np.float32)
    audio = np.concatenate([tone, quiet, tone])  # speech 0-1 s, silence, speech 2-3 s
    assert speech_left_out([SimpleNamespace(end=1.0)], audio)
    assert not speech_left_out([SimpleNamespace(end=3.0)], audio)
    assert speech_left_out([], audio)
    assert not speech_left_out([SimpleNamespace(end=1.0)], np.concatenate([tone, quiet]))  # only silence after
    assert not speech_left_out([], np.zeros(0, np.float32))


def test_a_long_answer_decoded_with_the_hint_keeps_its_last_sentence():
    from theo_ray.bench.stt_render import LineRenderer
    from theo_ray.deployments.backends.faster_whisper_stt import FasterWhisperBackend

    config = config_from_mapping({})
    renderer = LineRenderer(config.model_cache() / "stt-bench", config.model_cache())
    chunks = []
    for text, pause_s in PARTS:
        chunks += [asyncio.run(renderer.render("pm_alex", "g711-clean", text)), np.zeros(int(pause_s * 16000), np.int16)]
    audio = np.concatenate(chunks).astype(np.float32) / 32768.0
    backend = FasterWhisperBackend(config.stt, config.model_cache())
    segments, _ = backend.transcribe_blocking(audio, "pt", "", True, "Olá! Aqui é a Theo. Como posso te ajudar?")
    text = " ".join(s.text for s in segments).lower()
    assert "chamado" in text and "terceira vez" in text, text
