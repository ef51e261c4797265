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
    (kwargs,) = calls
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
