"""ComfortNoise: the line's idle fill while Theo is silent (THINKING included).

It shapes white noise once with an FFT (numpy) into one periodic buffer of a few seconds, then
reads frames from it round-robin: FFT-shaped noise is circular, so the loop has no seam, and a
frame costs a slice, not a filter run.
"""

from __future__ import annotations

import numpy as np


class ComfortNoise:
    """Low-level pink or brown noise as int16 mono PCM frames."""

    def __init__(
        self,
        sample_rate: int,
        level_dbfs: float = -62.0,
        color: str = "pink",
        seconds: float = 4.0,
        seed: int | None = None,
    ) -> None:
        if color not in ("pink", "brown"):
            raise ValueError(f"color must be 'pink' or 'brown', not {color!r}")
        n = int(sample_rate * seconds)
        rng = np.random.default_rng(seed)
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
        freqs[0] = freqs[1]  # no DC blow-up
        # Pink: power ~ 1/f (amplitude 1/sqrt f); brown: power ~ 1/f^2.
        spectrum /= np.sqrt(freqs) if color == "pink" else freqs
        # Nothing under 100 Hz: a phone line does not carry it, and brown noise would put most
        # of its energy there, making the level of a short stretch swing by several dB.
        spectrum[freqs < 100.0] = 0.0
        noise = np.fft.irfft(spectrum, n)
        # RMS level relative to int16 full scale.
        target_rms = 32767.0 * 10 ** (level_dbfs / 20.0)
        noise *= target_rms / np.sqrt(np.mean(noise**2))
        self._buffer = np.clip(np.round(noise), -32768, 32767).astype("<i2")
        self._pos = 0
        self.sample_rate = sample_rate

    def frame(self, samples: int) -> bytes:
        """The next ``samples`` of noise (e.g. 160 for 20 ms at 8 kHz)."""
        return self.frame_array(samples).tobytes()

    def frame_array(self, samples: int) -> np.ndarray:
        """The next ``samples`` of noise as an int16 array (the media clock's form)."""
        out = np.empty(samples, dtype="<i2")
        filled = 0
        while filled < samples:
            take = min(samples - filled, self._buffer.size - self._pos)
            out[filled : filled + take] = self._buffer[self._pos : self._pos + take]
            filled += take
            self._pos = (self._pos + take) % self._buffer.size
        return out

    def frame_ms(self, ms: int) -> bytes:
        return self.frame(self.sample_rate * ms // 1000)
