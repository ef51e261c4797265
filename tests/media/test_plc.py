"""PacketLossConcealer: pitch repeat, fade-out, smooth merge, no gaps."""

from __future__ import annotations

import numpy as np

from theo_ray.media.plc import PacketLossConcealer
from tests.media.signals import snr_db, speech_like

RATE, FRAME = 8000, 160


def vowel(seconds: float = 1.0, f0: float = 125.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    x = sum(np.sin(2 * np.pi * f0 * k * t + k) / k for k in range(1, 12))
    return (x / np.abs(x).max() * 10000).astype(np.int16)


def run(signal: np.ndarray, lost: set[int]) -> tuple[np.ndarray, PacketLossConcealer]:
    plc = PacketLossConcealer(RATE, FRAME)
    out = []
    for i in range(signal.size // FRAME):
        frame = signal[i * FRAME : (i + 1) * FRAME]
        out.append(plc.conceal() if i in lost else plc.good(frame))
    return np.concatenate(out), plc


def test_good_frames_pass_through_untouched():
    x = speech_like(RATE, 0.5)
    y, plc = run(x, set())
    assert np.array_equal(x[: y.size], y)
    assert plc.concealed_frames == 0


def test_single_loss_on_a_vowel_is_a_close_pitch_repeat():
    x = vowel()
    y, plc = run(x, {20})
    lost = slice(20 * FRAME, 21 * FRAME)
    # A 125 Hz vowel is periodic: the repeated period predicts the lost 20 ms well.
    assert snr_db(x[lost][: FRAME // 2], y[lost][: FRAME // 2]) > 10.0
    # Silence would be the trivial (0 dB) answer; the concealment is far better.
    assert snr_db(x[lost], y[lost]) > 6.0
    assert plc.loss_runs == 1


def test_no_clicks_at_loss_edges():
    x = vowel()
    y, _ = run(x, {20, 21})
    steps = np.abs(np.diff(y.astype(np.int32)))
    natural = np.abs(np.diff(x.astype(np.int32))).max()
    for edge in (20 * FRAME, 22 * FRAME):  # into the loss and back to real audio
        assert steps[edge - 2 : edge + 2].max() <= 1.5 * natural


def test_long_loss_fades_to_silence_then_merges_back():
    x = vowel()
    y, _ = run(x, set(range(10, 16)))  # 120 ms lost
    rms = lambda a: float(np.sqrt(np.mean(a.astype(np.float64) ** 2)))
    first = y[10 * FRAME : 11 * FRAME]
    third = y[12 * FRAME : 13 * FRAME]
    assert rms(first) > 0.5 * rms(x[10 * FRAME : 11 * FRAME])  # still voiced in the first 20 ms
    assert rms(third) < rms(first)
    assert rms(y[13 * FRAME : 16 * FRAME]) == 0.0  # silent after 60 ms
    # Back to real audio: after the 5 ms merge the output is the real signal again.
    back = 16 * FRAME + 40
    assert np.array_equal(y[back : 17 * FRAME], x[back : 17 * FRAME])


def test_stream_has_no_gaps_under_random_loss():
    rng = np.random.default_rng(7)
    x = speech_like(RATE, 4.0)
    frames = x.size // FRAME
    lost = {i for i in range(frames) if rng.random() < 0.1}
    y, plc = run(x, lost)
    assert y.size == frames * FRAME
    assert plc.concealed_frames == len(lost)
    assert plc.loss_runs <= len(lost)


def test_first_frame_lost_before_any_audio_gives_silence():
    plc = PacketLossConcealer(16000, 320)
    out = plc.conceal()
    assert out.dtype == np.int16 and out.size == 320 and not out.any()
