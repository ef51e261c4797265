"""The TextToSpeech deployment's fallback voice and circuit breaker, in process (no Ray):
the real deployment class, a failing backend (test double) as the primary and the real
espeak-ng backend as the fallback."""

from __future__ import annotations

import asyncio

import pytest

from theo_ray.circuit_breaker import CircuitBreaker
from theo_ray.backend_registry import BACKENDS
from theo_ray.config import DeploymentSettings, TextToSpeechSettings
from theo_ray.errors import BackendError
from theo_ray.messages import SynthesizeRequest
from tests.fakes.failing_tts import FailingTts


@pytest.fixture()
def tts(monkeypatch, tmp_path):
    monkeypatch.setitem(BACKENDS["tts"], "failing", "tests.fakes.failing_tts:FailingTts")
    FailingTts.failures_left, FailingTts.fail_mid_sentence, FailingTts.calls = 0, False, 0
    from theo_ray.deployments.text_to_speech import TextToSpeech

    settings = TextToSpeechSettings(backend="failing", fallback_backend="espeak", breaker_failures=3,
                                    breaker_open_s=30.0, deployment=DeploymentSettings(cpu_nice=0))
    return TextToSpeech.func_or_class(settings, str(tmp_path))


def _speak(tts, text: str):
    async def collect():
        return [c async for c in tts.synthesize(SynthesizeRequest(text=text))]
    return asyncio.run(collect())


def test_a_failing_sentence_is_spoken_by_the_fallback_at_the_backends_rate(tts):
    FailingTts.failures_left = 1
    chunks = _speak(tts, "Bom dia. Como posso ajudar?")
    audio = [c for c in chunks if c.pcm]
    assert {c.sample_rate for c in chunks} == {24000}
    assert [c.text for c in audio] == ["Bom dia.", "Como posso ajudar?"]  # the first from espeak, resampled
    state = asyncio.run(tts.breaker_state())
    assert state.position == "closed" and state.failures == 1


def test_three_failures_open_the_breaker_and_calls_skip_the_backend(tts):
    FailingTts.failures_left = 3
    _speak(tts, "Um. Dois. Três.")
    assert asyncio.run(tts.breaker_state()).position == "open"
    calls = FailingTts.calls
    chunks = _speak(tts, "Quatro.")
    assert [c.text for c in chunks if c.pcm] == ["Quatro."]
    assert FailingTts.calls == calls  # the backend was not even tried
    assert asyncio.run(tts.breaker_state()).fallback_calls == 1


def test_a_backend_that_fails_mid_sentence_is_not_spliced(tts):
    FailingTts.failures_left, FailingTts.fail_mid_sentence = 1, True
    with pytest.raises(BackendError):
        _speak(tts, "Uma frase longa que quebra no meio.")


def test_the_breaker_probes_once_after_its_open_time_and_closes_on_success():
    now = [0.0]
    breaker = CircuitBreaker("x", failures_to_open=2, open_s=10.0, clock=lambda: now[0])
    breaker.record_failure(), breaker.record_failure()
    assert not breaker.allow()
    now[0] = 10.0
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.record_success()
    assert breaker.allow() and breaker.state().position == "closed" and breaker.state().opened == 1
    breaker.record_failure(), breaker.record_failure()
    now[0] = 25.0
    assert breaker.allow()
    breaker.record_failure()  # the probe failed: open again at once
    assert not breaker.allow() and breaker.state().opened == 3
