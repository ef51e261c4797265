"""The one resampling point between the network (codec) rate and the models' rates.

Only RtpSession creates Resamplers: one inbound (codec rate -> 16 kHz for VAD/STT)
and one outbound (TTS rate -> codec rate). Nothing else in Theo resamples.

Built on `soxr.ResampleStream` with `vr=True`. Measured here (soxr 1.1): the default
fixed-ratio engine releases output in blocks of ~100 ms (8 kHz -> 16 kHz "HQ" gives
0,0,0,0,0,1660,... samples for 20 ms chunks), which would add up to 100 ms of latency
to every turn; the variable-rate engine returns a full 20 ms per 20 ms chunk after a
100-sample start-up delay, with the same quality (1 kHz tone up-sampled at 85 dB SNR,
a 6 kHz tone down-sampled 24 -> 8 kHz attenuated by ~87 dB).
"""

from __future__ import annotations

import numpy as np
import soxr


class Resampler:
    """Streaming int16 mono resampler; passthrough when the rates are equal."""

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ") -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.quality = quality
        self._stream = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality, vr=True)
        )
        self._pending_in = 0  # input samples pushed since the last flush
        self._out_total = 0

    @property
    def passthrough(self) -> bool:
        return self._stream is None

    def process(self, pcm: np.ndarray) -> np.ndarray:
        """Resample one chunk; the output may be shorter at the start (filter delay)."""
        if self._stream is None:
            return pcm
        self._pending_in += pcm.size
        out = self._stream.resample_chunk(np.ascontiguousarray(pcm, dtype=np.int16))
        self._out_total += out.size
        return out

    @property
    def holds_samples(self) -> bool:
        """True when input went in whose output has not fully come out yet."""
        return self._stream is not None and self._pending_in > 0

    def flush(self) -> np.ndarray:
        """Emit what is still inside the filter (end of an utterance) and start fresh."""
        if self._stream is None or self._pending_in == 0:
            return np.zeros(0, dtype=np.int16)
        expected = int(round(self._pending_in * self.out_rate / self.in_rate))
        tail = self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        self._stream.clear()
        emitted = self._out_total + tail.size
        self._pending_in = 0
        self._out_total = 0
        # Trim or pad so the segment keeps exactly its duration at the new rate.
        if emitted > expected:
            tail = tail[: max(0, tail.size - (emitted - expected))]
        elif emitted < expected:
            tail = np.concatenate((tail, np.zeros(expected - emitted, dtype=np.int16)))
        return tail

    def reset(self) -> None:
        """Drop everything inside the filter (barge-in flush)."""
        if self._stream is not None:
            self._stream.clear()
        self._pending_in = 0
        self._out_total = 0
