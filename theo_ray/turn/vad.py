"""Streaming Silero VAD on onnxruntime, with hysteresis into speech start / speech end events.

The model file is the ``silero_vad.onnx`` shipped in the ``silero-vad`` wheel. The package is
located with ``importlib.util.find_spec`` and never imported: its ``__init__`` imports torch.
The feeding mirrors ``silero_vad.utils_vad.OnnxWrapper``: 512-sample windows at 16 kHz, each
prefixed with the last 64 samples of the previous window (the v5/v6 model needs that context),
plus the recurrent state tensor carried from call to call.

One ``SileroVad`` per call (its state is the call's). A window costs well under a millisecond of
CPU (see ``tests/turn/test_vad.py`` which prints the figure), so ``process()`` may run on the
actor's event loop for 20 ms frames.
"""

from __future__ import annotations

import importlib.util
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec
import numpy as np

from theo_ray.errors import ModelUnavailable
from theo_ray.turn.settings import VadSettings

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 512  # 32 ms, the only window the 16 kHz model accepts
CONTEXT_SAMPLES = 64
WINDOW_MS = WINDOW_SAMPLES * 1000 / SAMPLE_RATE
BLOCK_SAMPLES = SAMPLE_RATE // 100  # 10 ms level blocks for the energy speech end


class VadEvent(msgspec.Struct, frozen=True):
    """Speech started or ended; ``at_ms`` is stream time (audio fed since reset), ``probability``
    the window probability that completed the transition."""

    kind: Literal["speech_start", "speech_end"]
    at_ms: float
    probability: float


class VadStats(msgspec.Struct):
    windows: int = 0
    bad_input: int = 0  # chunks dropped: odd byte count, wrong dtype/shape
    busy_s: float = 0.0  # CPU time spent in the model


def silero_model_path() -> Path:
    """Path of ``silero_vad.onnx`` inside the installed silero-vad package (not imported)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable("silero-vad is not installed (pip install silero-vad --no-deps)")
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "silero_vad.onnx"
        if path.is_file():
            return path
    raise ModelUnavailable("silero-vad is installed but data/silero_vad.onnx is missing")


def load_silero_session(path: Path | None = None, threads: int = 1):
    """An onnxruntime session for the Silero model (one per call; it is about 2 MB)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads
    return ort.InferenceSession(
        str(path or silero_model_path()), sess_options=options, providers=["CPUExecutionProvider"]
    )


class SileroVad:
    """Speech probability per 32 ms window and hysteresis over it.

    Feed int16 mono PCM at 16 kHz of any length; whole windows are run, the remainder waits.
    """

    def __init__(
        self,
        settings: VadSettings | None = None,
        session=None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.settings = settings or VadSettings()
        self._session = session or load_silero_session(threads=self.settings.threads)
        self._clock = clock
        self.stats = VadStats()
        self.reset()

    def reset(self) -> None:
        """Forget audio, model state and hysteresis (e.g. at the start of a call)."""
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self._windows_done = 0
        self.speaking = False
        self.probability = 0.0
        self._run_start_ms: float | None = None  # first window of a candidate speech run
        self._silence_start_ms: float | None = None  # first window of a candidate silence
        self._last_speech_end_ms = 0.0  # end of the last window judged speech
        self.speech_ms = 0.0  # voiced time in the current/last utterance
        # Level of each 10 ms block fed, for `energy_speech_end_ms`: kept long enough to look
        # back from the speech end event (min_silence_ms after the last speech window).
        self._fed_samples = 0
        self._block_rest = np.zeros(0, dtype=np.float32)
        keep_ms = self.settings.min_silence_ms + self.settings.end_lookback_ms + 3 * WINDOW_MS
        self._block_levels: deque[tuple[float, float]] = deque(maxlen=int(keep_ms // 10) + 1)

    @property
    def now_ms(self) -> float:
        """Stream time of the audio processed so far."""
        return self._windows_done * WINDOW_MS

    @property
    def fed_ms(self) -> float:
        """Stream time of everything fed, the samples still waiting for a whole window included."""
        return self._fed_samples * 1000.0 / SAMPLE_RATE

    @property
    def last_speech_end_ms(self) -> float:
        """Stream time where the last window judged speech ends."""
        return self._last_speech_end_ms

    def energy_speech_end_ms(self, threshold_rms: float, lookback_ms: float) -> float:
        """Stream time where the last speech ended, to the 10 ms block: the end of the last
        block louder than `threshold_rms` (int16 scale) within `lookback_ms` before the end of
        the last window judged speech; that window's end when no block there is louder.

        Why: Silero's probability stays high for a window or two after the voice stops
        (measured on the caller voice over G.711: its last speech window ends ~75 ms p50 after
        the energy does), and the endpointing silence is counted from this instant."""
        end = self._last_speech_end_ms
        if lookback_ms <= 0:
            return end
        loud = [at for at, rms in self._block_levels if end - lookback_ms < at <= end + 1e-6 and rms > threshold_rms]
        return max(loud) if loud else end

    @property
    def silence_ms(self) -> float:
        """Trailing silence: time since the last window judged speech (0 while speaking)."""
        if self._windows_done == 0:
            return 0.0
        return max(0.0, self.now_ms - self._last_speech_end_ms)

    def process(self, pcm: bytes | np.ndarray) -> list[VadEvent]:
        """Run every complete window in ``pcm`` (plus what was pending); return the events."""
        samples = self._to_float(pcm)
        if samples is None:
            return []
        self._track_levels(samples)
        if self._pending.size:
            samples = np.concatenate((self._pending, samples))
        events: list[VadEvent] = []
        whole = samples.size - samples.size % WINDOW_SAMPLES
        for start in range(0, whole, WINDOW_SAMPLES):
            probability = self._run_window(samples[start : start + WINDOW_SAMPLES])
            event = self._hysteresis(probability)
            if event is not None:
                events.append(event)
        self._pending = samples[whole:].copy()
        return events

    def _track_levels(self, samples: np.ndarray) -> None:
        start = self._fed_samples - self._block_rest.size
        self._fed_samples += samples.size
        data = np.concatenate((self._block_rest, samples)) if self._block_rest.size else samples
        whole = data.size - data.size % BLOCK_SAMPLES
        if whole:
            blocks = data[:whole].reshape(-1, BLOCK_SAMPLES)
            levels = np.sqrt(np.mean(blocks * blocks, axis=1)) * 32768.0
            for i, rms in enumerate(levels):
                self._block_levels.append(((start + (i + 1) * BLOCK_SAMPLES) * 1000.0 / SAMPLE_RATE, float(rms)))
        self._block_rest = data[whole:].copy()

    def window_probability(self, window: np.ndarray) -> float:
        """Probability for one 512-sample float32 window (advances the model state)."""
        return self._run_window(np.asarray(window, dtype=np.float32))

    # ------------------------------------------------------------------ internals

    def _to_float(self, pcm: bytes | np.ndarray) -> np.ndarray | None:
        if isinstance(pcm, (bytes, bytearray, memoryview)):
            if len(pcm) % 2:
                self.stats.bad_input += 1
                return None
            return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        array = np.asarray(pcm)
        if array.ndim != 1:
            self.stats.bad_input += 1
            return None
        if array.dtype == np.int16:
            return array.astype(np.float32) / 32768.0
        if np.issubdtype(array.dtype, np.floating):
            return array.astype(np.float32)
        self.stats.bad_input += 1
        return None

    def _run_window(self, window: np.ndarray) -> float:
        started = self._clock()
        x = np.concatenate((self._context, window))[np.newaxis, :]
        out, state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._state = state
        self._context = x[0, -CONTEXT_SAMPLES:]
        self._windows_done += 1
        self.stats.windows += 1
        self.stats.busy_s += self._clock() - started
        self.probability = float(out[0][0])
        return self.probability

    def _hysteresis(self, p: float) -> VadEvent | None:
        s = self.settings
        end_ms = self.now_ms  # end of the window just run
        start_ms = end_ms - WINDOW_MS
        if not self.speaking:
            if p >= s.start_threshold:
                if self._run_start_ms is None:
                    self._run_start_ms = start_ms
                if end_ms - self._run_start_ms >= s.min_speech_ms:
                    self.speaking = True
                    self._silence_start_ms = None
                    self._last_speech_end_ms = end_ms
                    self.speech_ms = end_ms - self._run_start_ms
                    return VadEvent("speech_start", self._run_start_ms, p)
            else:
                self._run_start_ms = None
            return None
        if p >= s.stop_threshold:
            self._silence_start_ms = None
            self._last_speech_end_ms = end_ms
            self.speech_ms += WINDOW_MS
            return None
        if self._silence_start_ms is None:
            self._silence_start_ms = start_ms
        if end_ms - self._silence_start_ms >= s.min_silence_ms:
            self.speaking = False
            self._run_start_ms = None
            at = self._silence_start_ms
            self._silence_start_ms = None
            return VadEvent("speech_end", at, p)
        return None
