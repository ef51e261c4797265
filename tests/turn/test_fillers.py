import numpy as np
import pytest

from theo_ray.turn.fillers import (
    BACKCHANNELS,
    EMERGENCY_PHRASES,
    THINKING_FILLERS,
    PhrasePicker,
)
from theo_ray.media.comfort_noise import ComfortNoise


def rms_dbfs(pcm: bytes) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return 20 * np.log10(np.sqrt(np.mean(x**2)) / 32767)


@pytest.mark.parametrize("color", ["pink", "brown"])
@pytest.mark.parametrize("rate", [8000, 16000])
def test_comfort_noise_level_and_frame_size(color, rate):
    noise = ComfortNoise(rate, level_dbfs=-55, color=color, seed=3)
    frames = [noise.frame_ms(20) for _ in range(500)]  # 10 s: wraps the 4 s buffer
    assert all(len(f) == rate // 50 * 2 for f in frames)
    assert rms_dbfs(b"".join(frames)) == pytest.approx(-55, abs=1.0)


def test_comfort_noise_brown_at_a_given_level():
    noise = ComfortNoise(8000, level_dbfs=-60, color="brown")
    assert rms_dbfs(noise.frame(8000)) == pytest.approx(-60, abs=1.5)


def test_comfort_noise_is_not_white():
    """Pink/brown noise has more energy below 500 Hz than above 2 kHz; white noise does not."""
    for color in ("pink", "brown"):
        pcm = ComfortNoise(16000, -50, color, seed=1).frame(16000 * 2)
        x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        power = np.abs(np.fft.rfft(x)) ** 2
        freqs = np.fft.rfftfreq(x.size, 1 / 16000)
        low = power[(freqs > 50) & (freqs < 500)].mean()
        high = power[freqs > 2000].mean()
        assert low > 5 * high, color


def test_comfort_noise_loop_has_no_seam():
    noise = ComfortNoise(8000, -50, "brown", seconds=1.0, seed=2)
    x = np.frombuffer(noise.frame(16000), dtype="<i2").astype(np.float64)
    steps = np.abs(np.diff(x))
    assert steps[7999] < 6 * steps.mean() + 1  # the wrap point looks like any other sample


def test_phrases_and_picker():
    assert "Um momento só." in THINKING_FILLERS and "Uhum." in BACKCHANNELS
    assert "technical_problem" in EMERGENCY_PHRASES
    picker = PhrasePicker(THINKING_FILLERS, seed=5)
    picks = [picker.pick() for _ in range(50)]
    assert all(a != b for a, b in zip(picks, picks[1:]))
    assert set(picks) == set(THINKING_FILLERS)
    with pytest.raises(ValueError):
        ComfortNoise(8000, color="white")
