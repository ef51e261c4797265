"""EchoGate on a real line echo: our speech through PCMU, delayed and attenuated, with and
without the caller talking over it (double talk)."""

from __future__ import annotations

import io
import subprocess
import wave

import numpy as np
import pytest
import soxr

from theo_ray.conversation.echo_gate import EchoGate
from theo_ray.media.codecs import create_codec


def _espeak(text: str, rate: int) -> np.ndarray:
    out = subprocess.run(["espeak-ng", "-v", "pt-br", "--stdout", text], capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(out)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return soxr.resample(pcm, w.getframerate(), rate).astype(np.int16)


@pytest.mark.parametrize("delay_ms, gain_db", [(60, -10), (150, -10), (250, -20)])
def test_gate_stops_echo_but_not_the_caller(delay_ms, gain_db):
    codec = create_codec("PCMU")
    agent8 = codec.decode(codec.encode(_espeak(
        "Olá, eu sou a Theo, vou te explicar como funciona o seu plano de internet, com calma.", 8000)))
    agent16 = soxr.resample(agent8, 8000, 16000)
    delay = delay_ms * 16
    echo = (np.concatenate([np.zeros(delay), agent16])[: len(agent16)] * 10 ** (gain_db / 20)).astype(np.int16)
    caller = _espeak("Espera, espera, quero falar de outra coisa.", 16000)
    gate = EchoGate()
    echo_frames = echo_gated = caller_frames = caller_gated = 0
    frames = len(agent8) // 160
    half = frames // 2
    for i in range(frames):
        gate.on_reference(agent8[i * 160 : (i + 1) * 160])
        frame = echo[i * 320 : (i + 1) * 320].astype(np.int32)
        part = caller[(i - half) * 320 : (i - half + 1) * 320] if i >= half else np.zeros(0)
        if len(part) == 320:
            mixed = np.clip(frame + part, -32768, 32767).astype(np.int16)
            gated = gate.is_echo_only(mixed)
            if np.sqrt(np.mean(part.astype(float) ** 2)) > 2 * max(1.0, np.sqrt(np.mean(frame.astype(float) ** 2))):
                caller_frames += 1
                caller_gated += gated
        else:
            gated = gate.is_echo_only(frame.astype(np.int16))
            if np.sqrt(np.mean(frame.astype(float) ** 2)) > 100:
                echo_frames += 1
                echo_gated += gated
    assert gate.delay_ms is not None and abs(gate.delay_ms - delay_ms) <= 20
    assert echo_gated >= 0.9 * echo_frames, (echo_gated, echo_frames)
    assert caller_gated <= 0.1 * caller_frames, (caller_gated, caller_frames)
