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


def test_fast_path_check_stops_our_echo_passes_the_caller_and_changes_nothing():
    """`could_be_echo(rms)` (the barge-in fast path at packet arrival) on the same line echo
    (-10 dB, 60 ms): every echo packet could be ours, a caller as loud as the agent could not,
    before and after the path is learned; it never moves the gate's own state."""
    codec = create_codec("PCMU")
    agent8 = codec.decode(codec.encode(_espeak(
        "Olá, eu sou a Theo, vou te explicar como funciona o seu plano de internet, com calma.", 8000)))
    delay = 60 * 8
    echo = (np.concatenate([np.zeros(delay), agent8])[: len(agent8)] * 10 ** (-10 / 20)).astype(np.int16)
    rms = lambda a: float(np.sqrt(np.mean(a.astype(np.float64) ** 2)))  # noqa: E731
    gate = EchoGate()
    assert not gate.could_be_echo(5000.0)  # nothing sent yet: nothing can be our echo
    flagged_before = flagged_after = echo_packets = 0
    agent_level = []
    for i in range(len(agent8) // 160):
        gate.on_reference(agent8[i * 160 : (i + 1) * 160])
        packet = echo[i * 160 : (i + 1) * 160]
        agent_level.append(rms(agent8[i * 160 : (i + 1) * 160]))
        if rms(packet) > 100:
            echo_packets += 1
            learned = gate.delay_ms is not None
            state = (gate.frames_gated, gate.frames_passed, gate.delay_ms, gate.gain)
            ok = gate.could_be_echo(rms(packet))
            assert state == (gate.frames_gated, gate.frames_passed, gate.delay_ms, gate.gain)
            flagged_after += ok and learned
            flagged_before += ok and not learned
        gate.is_echo_only(np.repeat(packet, 2))  # the frame path at 16 kHz, as the turn loop runs it
    assert gate.delay_ms is not None
    assert flagged_before + flagged_after == echo_packets
    # A caller talking as loud as the agent's median packet is not explained by our echo.
    assert not gate.could_be_echo(float(np.median([a for a in agent_level if a > 100])))


def test_fast_path_on_a_quiet_line_takes_a_soft_caller_onset_for_the_caller():
    """A line that returns no echo (the PBX's hybrid is ideal, or the simulator): once the
    agent has talked longer than the echo's reach with the line staying 20 dB below, a
    caller onset far softer than the agent (-30 dB) is not taken for echo. At the start of
    an utterance (its echo could still be on its way) the conservative default holds."""
    codec = create_codec("PCMU")
    agent8 = codec.decode(codec.encode(_espeak(
        "Olá, eu sou a Theo, vou te explicar como funciona o seu plano de internet, com calma.", 8000)))
    rms = lambda a: float(np.sqrt(np.mean(a.astype(np.float64) ** 2)))  # noqa: E731
    line_noise = np.full(320, 3, np.int16)  # -80 dBFS: comfort noise level
    gate = EchoGate()
    soft = rms(agent8) * 10 ** (-30 / 20)
    frames = len(agent8) // 160
    verdicts = []
    for i in range(frames):
        gate.on_reference(agent8[i * 160 : (i + 1) * 160])
        gate.is_echo_only(line_noise)
        verdicts.append(gate.could_be_echo(max(soft, 200.0)))
    assert gate.delay_ms is None  # no echo: nothing to learn
    assert all(verdicts[:20])  # the first 400 ms: the echo could still be coming back
    assert not any(verdicts[int(1.3 * 50):])  # after the echo's reach went by quietly
