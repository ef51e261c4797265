"""CallRecording: sample positions are time, gaps are silence, WAV + sidecar round-trip, bad frames counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from theo_ray.sim.recording import CallRecording, sidecar_path


class FakeClock:
    """Test double for the injected clock (time is moved by hand)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def frame(value: int, n: int = 320) -> bytes:
    return np.full(n, value, dtype="<i2").tobytes()


def test_frames_land_at_their_sample_and_gaps_are_silent() -> None:
    rec = CallRecording(sample_rate=16000)
    assert rec.write("tx", frame(100), 0)
    assert rec.write("rx", frame(-200), 16000)  # one second later
    assert rec.append("tx", frame(300)) == 320
    tx, rx = rec.track("tx"), rec.track("rx")
    assert rec.length_samples == 16320 and len(tx) == len(rx) == 16320
    assert np.all(tx[:320] == 100) and np.all(tx[320:640] == 300) and not np.any(tx[640:])
    assert not np.any(rx[:16000]) and np.all(rx[16000:] == -200)
    assert rec.duration_ms == pytest.approx(1020.0)


def test_clock_maps_to_samples() -> None:
    clock = FakeClock()
    rec = CallRecording(sample_rate=8000, clock=clock)
    rec.start()
    clock.t += 0.25
    assert rec.now_sample() == 2000
    assert rec.write_now("rx", frame(5, 160)) == 2000
    event = rec.mark("utterance_start", track="tx", label="oi")
    assert event.sample == 2000 and rec.ms_of(event.sample) == 250.0


def test_stereo_wav_and_sidecar_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rec = CallRecording()
    caller = rng.integers(-20000, 20000, 4000, dtype=np.int16)
    agent = rng.integers(-20000, 20000, 3000, dtype=np.int16)
    rec.write("tx", caller, 800)
    rec.write("rx", agent, 5000)
    rec.mark("utterance_start", 800, "tx", "pergunta")
    rec.mark("utterance_end", 4800, "tx", "pergunta")
    rec.mark("barge_in", 6000, "tx", "corte", intended="stops")
    wav, side = rec.save(tmp_path / "call.wav")
    assert side == sidecar_path(wav) == tmp_path / "call.events.json"

    data, rate = soundfile.read(wav, dtype="int16")
    assert rate == 16000 and data.shape == (8000, 2)
    assert np.array_equal(data[800:4800, 0], caller)  # left = caller
    assert np.array_equal(data[5000:8000, 1], agent)  # right = agent

    back = CallRecording.load(wav)
    assert np.array_equal(back.track("tx"), rec.track("tx"))
    assert np.array_equal(back.track("rx"), rec.track("rx"))
    assert back.events == sorted(rec.events, key=lambda e: e.sample)
    assert back.events[-1].detail == {"intended": "stops"}
    assert back.stats == rec.stats


def test_bad_frames_are_dropped_and_counted() -> None:
    rec = CallRecording(sample_rate=16000, max_seconds=1.0)
    assert not rec.write("tx", b"\x01\x02\x03", 0)  # odd byte count
    assert not rec.write("tx", np.zeros((2, 2), np.int16), 0)  # not mono
    assert not rec.write("tx", np.array([0.1, np.nan]), 0)  # not finite
    assert not rec.write("rx", frame(1), -1)  # before the call
    assert not rec.write("rx", frame(1), 15900)  # past max_seconds
    assert rec.stats.frames_dropped_malformed == 3
    assert rec.stats.frames_dropped_out_of_range == 2
    assert rec.stats.frames_written == 0 and rec.length_samples == 0


def test_overwrites_are_counted_but_silent_gaps_are_not() -> None:
    rec = CallRecording()
    rec.write("rx", frame(7), 1000)
    rec.write("rx", frame(9, 100), 0)  # into the silent gap before the first frame
    assert rec.stats.samples_overwritten == 0
    rec.write("rx", frame(9, 100), 1200)  # onto audio already there
    assert rec.stats.samples_overwritten == 100
    assert np.all(rec.track("rx")[1200:1300] == 9)


def test_float_frames_are_converted() -> None:
    rec = CallRecording()
    rec.write("tx", np.array([0.5, -1.0, 2.0], dtype=np.float32), 0)
    assert list(rec.track("tx")) == [16384, -32767, 32767]


def test_load_rejects_a_mono_file(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "mono.wav", np.zeros(100, np.int16), 16000, subtype="PCM_16")
    with pytest.raises(ValueError, match="2 channels"):
        CallRecording.load(tmp_path / "mono.wav")
