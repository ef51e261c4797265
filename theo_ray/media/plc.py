"""Packet-loss concealment for one decoded inbound stream (at the codec's rate).

It owns the recent audio history and turns every "missing" tick into a frame of
plausible audio, so that the VAD and the STT downstream see a continuous stream:

- pitch-period repeat: the lag with the highest normalised autocorrelation
  (60..400 Hz) over the last 10 ms picks one pitch period that is repeated,
  its end cross-faded into the audio before it so the loop has no click;
- fade-out: full level for the first 10 ms of a loss run, then a linear ramp to
  silence over the next 50 ms (the G.711 Appendix I shape), silence after that;
- smooth merge: the first real frame after a loss is cross-faded with the
  continued concealment over 5 ms.

Hand-written (about what ITU-T G.711 Appendix I describes) because no maintained
Python package offers streaming PLC; everything is numpy-vectorised per frame.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class PacketLossConcealer:
    def __init__(
        self,
        sample_rate: int,
        frame_samples: int,
        hold_ms: float = 10.0,
        fade_ms: float = 50.0,
        merge_ms: float = 5.0,
    ) -> None:
        self.sample_rate = sample_rate
        self.frame_samples = frame_samples
        self._min_lag = sample_rate // 400
        self._max_lag = sample_rate // 60
        self._window = sample_rate // 100  # 10 ms correlation window
        self._history = np.zeros(self._max_lag + self._window + frame_samples, dtype=np.float32)
        self._hold = int(sample_rate * hold_ms / 1000)
        self._fade = max(1, int(sample_rate * fade_ms / 1000))
        self._merge = min(frame_samples, max(1, int(sample_rate * merge_ms / 1000)))
        self._period: np.ndarray | None = None
        self._phase = 0
        self._lost_samples = 0  # samples concealed in the current loss run
        self.concealed_frames = 0
        self.loss_runs = 0

    @property
    def in_loss(self) -> bool:
        return self._lost_samples > 0

    def _push_history(self, frame: np.ndarray) -> None:
        n = frame.size
        h = self._history
        if n == 0:
            return  # h[:-0] is empty: an empty frame must not reach the slice below
        if n >= h.size:
            h[:] = frame[-h.size :]
        else:
            h[:-n] = h[n:]
            h[-n:] = frame

    def _pitch_lag(self) -> int:
        h = self._history
        w, lo, hi = self._window, self._min_lag, self._max_lag
        target = h[-w:]
        # Row k is the window that ends (hi - k) samples before the end, i.e. lag hi - k.
        candidates = sliding_window_view(h[-(w + hi) : -lo], w)
        dots = candidates @ target
        energies = np.einsum("ij,ij->i", candidates, candidates) * float(target @ target)
        if energies.max() <= 0.0:
            return hi
        score = dots / np.sqrt(np.maximum(energies, 1e-9))
        best = int(np.argmax(score))
        return hi - best if score[best] > 0.3 else hi

    def _start_loss(self) -> None:
        lag = self._pitch_lag()
        h = self._history
        period = h[-lag:].copy()
        # Cross-fade the period's end into the samples that preceded it, so that the
        # wrap from period[-1] back to period[0] is as smooth as the original signal.
        taper = max(1, lag // 4)
        ramp = np.linspace(0.0, 1.0, taper, dtype=np.float32)
        before = h[-lag - taper : -lag]
        period[-taper:] = period[-taper:] * (1.0 - ramp) + before * ramp
        self._period = period
        self._phase = 0
        self.loss_runs += 1

    def _continue(self, n: int) -> np.ndarray:
        """The next n samples of the concealment signal, with the fade-out gain applied."""
        period = self._period
        assert period is not None
        idx = (self._phase + np.arange(n)) % period.size
        self._phase = (self._phase + n) % period.size
        pos = self._lost_samples + np.arange(n, dtype=np.float32)
        gain = np.clip(1.0 - (pos - self._hold) / self._fade, 0.0, 1.0)
        self._lost_samples += n
        return period[idx] * gain

    def conceal(self, n: int | None = None) -> np.ndarray:
        """A synthetic frame for a missing packet (int16)."""
        n = self.frame_samples if n is None else n
        if not self.in_loss:
            self._start_loss()
        if self._lost_samples >= self._hold + self._fade:
            out = np.zeros(n, dtype=np.float32)
            self._lost_samples += n
        else:
            out = self._continue(n)
        self._push_history(out)
        self.concealed_frames += 1
        return out.astype(np.int16)

    def good(self, frame: np.ndarray) -> np.ndarray:
        """A real decoded frame (int16); returned merged with the concealment after a loss."""
        if not self.in_loss:
            self._push_history(frame.astype(np.float32))
            return frame
        m = min(self._merge, frame.size)
        if self._lost_samples >= self._hold + self._fade:
            tail = np.zeros(m, dtype=np.float32)
        else:
            tail = self._continue(m)
        out = frame.astype(np.float32)
        ramp = np.linspace(0.0, 1.0, m, endpoint=False, dtype=np.float32)
        out[:m] = tail * (1.0 - ramp) + out[:m] * ramp
        self._lost_samples = 0
        self._period = None
        self._push_history(out)
        return np.clip(out, -32768, 32767).astype(np.int16)
