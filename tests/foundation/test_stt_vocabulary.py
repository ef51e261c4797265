"""Domain vocabulary and the request's hint reach the decoder; segments carry confidence.

The real SpeechToText deployment class (called in process, no Ray) with the real packaged
Whisper base; faster-whisper's `transcribe` is wrapped to record the arguments it is given
and then decodes as usual.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import numpy as np
import pytest

from theo_ray.config import config_from_mapping
from theo_ray.messages import TranscribeRequest


def _deployment(stt: dict):
    from theo_ray.deployments.speech_to_text import SpeechToText

    config = config_from_mapping({"stt": stt})
    deployment = SpeechToText.func_or_class(config.stt, str(Path(config.paths.model_cache).expanduser()))
    calls: list[dict] = []
    model = deployment.backend.model
    real = model.transcribe

    def recording(audio, **kwargs):
        calls.append(kwargs)
        return real(audio, **kwargs)

    model.transcribe = recording
    return deployment, calls


def _transcribe(deployment, request: TranscribeRequest) -> list:
    async def run():
        return [s async for s in deployment.transcribe(request)]

    return asyncio.run(run())


def _speech() -> bytes:
    t = np.arange(16000) / 16000
    return (3000 * np.sin(2 * np.pi * 200 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.int16).tobytes()


@pytest.mark.parametrize("vocabulary", ["hotwords", "prompt", "off"])
def test_domain_terms_from_config_reach_the_decoder(vocabulary):
    terms = ["Conecta Telecom", "Fibra Max", "segunda via", "boleto", "Pix", "portabilidade"]
    deployment, calls = _deployment({"domain_terms": terms, "vocabulary": vocabulary})
    _transcribe(deployment, TranscribeRequest(audio=_speech(), hint="Qual é o seu CPF?", prompt="Oi, boa tarde."))
    kwargs = calls[0]  # (a tone is no words: the hint guard may decode it again without the hint)
    joined = ", ".join(terms)
    assert kwargs["initial_prompt"].endswith("Qual é o seu CPF? Oi, boa tarde.")  # the agent's question, then the caller's
    if vocabulary == "hotwords":
        assert kwargs["hotwords"] == joined and joined not in kwargs["initial_prompt"]
    elif vocabulary == "prompt":
        assert kwargs["hotwords"] is None and kwargs["initial_prompt"].startswith(joined)
    else:
        assert kwargs["hotwords"] is None and joined not in kwargs["initial_prompt"]


def test_decoding_settings_reach_the_decoder():
    deployment, calls = _deployment({"beam_size": 3, "vad_trim": True, "temperature_fallback": [0.2, 0.6]})
    _transcribe(deployment, TranscribeRequest(audio=_speech()))
    (kwargs,) = calls
    assert kwargs["beam_size"] == 3 and kwargs["vad_filter"] is True
    assert list(kwargs["temperature"]) == [0.0, 0.2, 0.6]
    assert kwargs["initial_prompt"] is None and kwargs["hotwords"] is None  # vocabulary off by default


def test_segments_carry_the_decoders_confidence():
    from theo_ray.bench.stt_render import LineRenderer

    config = config_from_mapping({})
    renderer = LineRenderer(config.model_cache() / "stt-bench", config.model_cache())
    audio = asyncio.run(renderer.render("espeak:pt-br", "g711-clean", "Quero a segunda via do boleto."))
    deployment, _calls = _deployment({})
    segments = _transcribe(deployment, TranscribeRequest(audio=audio.tobytes()))
    assert segments
    for seg in segments:
        assert seg.avg_logprob < 0.0 and 0.0 <= seg.no_speech_prob <= 1.0
        assert seg.words and seg.min_word_probability == min(w.probability for w in seg.words)
        assert 0.0 < seg.min_word_probability <= 1.0 and seg.temperature == 0.0
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(segments[0]), type=type(segments[0]))
    assert decoded.min_word_probability == segments[0].min_word_probability  # crosses Serve as it is


def test_bad_decoding_settings_are_config_errors():
    from theo_ray.errors import ConfigError

    for stt in ({"beam_size": 0}, {"temperature_fallback": [1.5]}, {"vocabulary": "always"}):
        with pytest.raises(ConfigError):
            config_from_mapping({"stt": stt})


def test_the_agents_question_reaches_the_decoder_through_the_calls_transcriber():
    """The call's own path: the Transcriber's hint (what the agent asked, from stt_hint) ->
    ModelClient's TranscribeRequest -> the SpeechToText deployment -> faster-whisper's
    initial prompt; real Whisper base on a caller's CPF dictated by a Kokoro voice over G.711."""
    from types import SimpleNamespace

    from theo_ray.bench.stt_render import LineRenderer
    from theo_ray.conversation.model_client import ModelClient
    from theo_ray.conversation.readback import dictated_runs
    from theo_ray.conversation.records import CallRecord
    from theo_ray.conversation.stt_hint import DIGITS_CUE, hint_for
    from theo_ray.conversation.transcriber import Transcriber
    from theo_ray.messages import TraceContext

    deployment, calls = _deployment({})

    class _SttHandle:  # what ModelClient calls on a Serve handle, in process
        def options(self, stream: bool):
            return SimpleNamespace(transcribe=SimpleNamespace(remote=deployment.transcribe))

    config = config_from_mapping({})
    renderer = LineRenderer(config.model_cache() / "stt-bench", config.model_cache())
    audio = asyncio.run(renderer.render("pf_dora", "g711-clean",
                                        "Meu CPF é quatro cinco dois, três um oito, nove nove zero, dezessete."))
    asked = "Certo, vou puxar a sua fatura. Qual é o seu CPF?"
    transcriber = Transcriber(ModelClient(SimpleNamespace(stt=_SttHandle())), 60.0, CallRecord(session_id="s"),
                              TraceContext, hint=lambda: hint_for(asked).text)
    transcript = asyncio.run(transcriber.transcribe(audio, final=True))
    (kwargs,) = calls
    assert kwargs["initial_prompt"] == f"Qual é o seu CPF? {DIGITS_CUE}"  # the question, digits expected
    assert transcript.words and all(0.0 < w.probability <= 1.0 for w in transcript.words)
    runs = dictated_runs(transcript.words, 4)  # the dictation came back as digits, with their confidence
    assert runs and runs[0].digits.startswith("452"), transcript.text
