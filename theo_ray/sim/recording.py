"""Both directions of a simulated call on one sample-accurate timeline.

A :class:`CallRecording` holds two mono int16 tracks at one rate: ``tx`` (caller -> agent, what the
simulated caller sends) and ``rx`` (agent -> caller, what it hears). The sample index *is* the time:
a frame is written at the sample position of the instant it was sent or received, gaps stay
silent, so "agent audio started 640 ms after the caller stopped" can be read off the two tracks.
It saves as a stereo WAV (left = caller, right = agent) plus a sidecar JSON with the events the
simulator marked (utterance start/end, barge-in instants, DTMF, hang-up) and the write counters.

Event conventions the analysis relies on: every caller utterance is bracketed by
``utterance_start`` / ``utterance_end`` on track ``tx`` whose ``label`` is
``scenario.utterance_label(step_index, utterance)``; a ``barge_in`` step also gets a
``barge_in`` (expect_agent=stops) or ``backchannel`` (expect_agent=continues) event with the same
label at its start; ``call_answered`` and ``hangup``/``call_ended`` bound the call; a transfer
the caller side notices is a ``transfer`` event.

Frames must already be at the recording's rate (the simulator's one resampling point is before
this). Writes may come from a SIP media thread, so they take a lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec
import numpy as np
import soundfile

Track = Literal["tx", "rx"]
EventKind = Literal[
    "call_answered",
    "utterance_start",
    "utterance_end",
    "barge_in",
    "backchannel",
    "wait_done",
    "wait_timeout",
    "dtmf",
    "transfer",
    "hangup",
    "call_ended",
]

CHANNELS = ("caller", "agent")  # stereo WAV order: left = tx, right = rx


class RecordingEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    """Something the simulator did or saw, at a sample position of the recording."""

    kind: EventKind
    sample: int
    track: Track | None = None
    # Utterance id, DTMF digit, transfer target, ...
    label: str = ""
    detail: dict[str, str] = {}


class RecordingStats(msgspec.Struct):
    """Write counters; dropped frames are counted, never raised."""

    frames_written: int = 0
    samples_written: int = 0
    # Samples written over audio already there (a late frame landing on a later one).
    samples_overwritten: int = 0
    frames_dropped_malformed: int = 0
    frames_dropped_out_of_range: int = 0


class RecordingSidecar(msgspec.Struct):
    """The JSON written beside the WAV."""

    sample_rate: int
    length_samples: int
    channels: list[str]
    events: list[RecordingEvent]
    stats: RecordingStats
    # Wall-clock time of sample 0 (for lining up with traces); 0 when unknown.
    started_at_unix: float = 0.0


def sidecar_path(wav_path: str | Path) -> Path:
    """``call.wav`` -> ``call.events.json``."""
    wav_path = Path(wav_path)
    return wav_path.with_name(wav_path.stem + ".events.json")


class CallRecording:
    """Two mono tracks (tx, rx) on one sample timeline, plus marked events."""

    def __init__(
        self,
        sample_rate: int = 16000,
        max_seconds: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if sample_rate <= 0:
            raise ValueError("sample_rate must be > 0")
        self.sample_rate = sample_rate
        self.max_samples = int(max_seconds * sample_rate)
        self.stats = RecordingStats()
        self.started_at_unix = 0.0
        self._clock = clock
        self._t0: float | None = None
        self._lock = threading.Lock()
        self._tracks: dict[str, np.ndarray] = {"tx": np.zeros(0, np.int16), "rx": np.zeros(0, np.int16)}
        self._track_end: dict[str, int] = {"tx": 0, "rx": 0}
        self._length = 0
        self._events: list[RecordingEvent] = []

    # ------------------------------------------------------------ timeline

    def start(self) -> None:
        """Sample 0 is now (by the injected clock)."""
        self._t0 = self._clock()
        self.started_at_unix = time.time()

    def sample_at(self, t: float) -> int:
        """Sample index of clock time ``t`` (the clock passed in)."""
        if self._t0 is None:
            raise RuntimeError("CallRecording.start() was not called")
        return round((t - self._t0) * self.sample_rate)

    def now_sample(self) -> int:
        return self.sample_at(self._clock())

    def ms_of(self, sample: int) -> float:
        return sample * 1000.0 / self.sample_rate

    @property
    def length_samples(self) -> int:
        return self._length

    @property
    def duration_ms(self) -> float:
        return self.ms_of(self._length)

    @property
    def events(self) -> list[RecordingEvent]:
        return list(self._events)

    # ------------------------------------------------------------ writing

    def write(self, track: Track, pcm: bytes | np.ndarray, at_sample: int) -> bool:
        """Put a frame at ``at_sample``; returns False (and counts it) when the frame is dropped.

        ``pcm`` is little-endian int16 bytes, an int16 array, or a float array in [-1, 1].
        """
        samples = self._as_int16(pcm)
        if samples is None:
            self.stats.frames_dropped_malformed += 1
            return False
        end = at_sample + len(samples)
        if at_sample < 0 or end > self.max_samples:
            self.stats.frames_dropped_out_of_range += 1
            return False
        with self._lock:
            buf = self._ensure_capacity(track, end)
            overlap_end = min(end, self._track_end[track])
            if overlap_end > at_sample:
                # Only audio that is really there counts as overwritten, not the silent gap.
                self.stats.samples_overwritten += int(np.count_nonzero(buf[at_sample:overlap_end]))
            buf[at_sample:end] = samples
            self._track_end[track] = max(self._track_end[track], end)
            self._length = max(self._length, end)
            self.stats.frames_written += 1
            self.stats.samples_written += len(samples)
        return True

    def append(self, track: Track, pcm: bytes | np.ndarray) -> int:
        """Write right after the track's last sample; returns the start sample (-1 if dropped)."""
        at = self._track_end[track]
        return at if self.write(track, pcm, at) else -1

    def write_now(self, track: Track, pcm: bytes | np.ndarray) -> int:
        """Write at the current clock position; returns the start sample (-1 if dropped)."""
        at = self.now_sample()
        return at if self.write(track, pcm, at) else -1

    def extend_to(self, sample: int) -> None:
        """Make the call last at least until ``sample`` (silence on both tracks), e.g. at hang-up."""
        sample = min(sample, self.max_samples)
        with self._lock:
            for track in ("tx", "rx"):
                self._ensure_capacity(track, sample)
            self._length = max(self._length, sample)

    def mark(
        self,
        kind: EventKind,
        at_sample: int | None = None,
        track: Track | None = None,
        label: str = "",
        **detail: str,
    ) -> RecordingEvent:
        """Record an event at ``at_sample`` (default: now by the clock)."""
        event = RecordingEvent(
            kind=kind,
            sample=self.now_sample() if at_sample is None else at_sample,
            track=track,
            label=label,
            detail={k: str(v) for k, v in detail.items()},
        )
        with self._lock:
            self._events.append(event)
        return event

    # ------------------------------------------------------------ reading

    def track(self, track: Track) -> np.ndarray:
        """A copy of one track, ``length_samples`` long (int16)."""
        with self._lock:
            out = np.zeros(self._length, np.int16)
            buf = self._tracks[track]
            n = min(len(buf), self._length)
            out[:n] = buf[:n]
        return out

    def stereo(self) -> np.ndarray:
        """(length, 2) int16: column 0 = caller (tx), column 1 = agent (rx)."""
        return np.stack([self.track("tx"), self.track("rx")], axis=1)

    def sidecar(self) -> RecordingSidecar:
        with self._lock:
            events = sorted(self._events, key=lambda e: e.sample)
        return RecordingSidecar(
            sample_rate=self.sample_rate,
            length_samples=self._length,
            channels=list(CHANNELS),
            events=events,
            stats=msgspec.structs.replace(self.stats),
            started_at_unix=self.started_at_unix,
        )

    def save(self, wav_path: str | Path) -> tuple[Path, Path]:
        """Write the stereo WAV and its sidecar JSON; returns both paths."""
        wav_path = Path(wav_path)
        wav_path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(wav_path, self.stereo(), self.sample_rate, subtype="PCM_16", format="WAV")
        side = sidecar_path(wav_path)
        side.write_bytes(msgspec.json.format(msgspec.json.encode(self.sidecar()), indent=2))
        return wav_path, side

    @classmethod
    def load(cls, wav_path: str | Path) -> CallRecording:
        """Read a recording written by :meth:`save` (the sidecar is optional: no events without it)."""
        wav_path = Path(wav_path)
        data, rate = soundfile.read(wav_path, dtype="int16", always_2d=True)
        if data.shape[1] != 2:
            raise ValueError(f"{wav_path}: expected 2 channels (caller, agent), got {data.shape[1]}")
        rec = cls(sample_rate=rate, max_seconds=max(3600.0, len(data) / rate + 1))
        rec._tracks = {"tx": np.ascontiguousarray(data[:, 0]), "rx": np.ascontiguousarray(data[:, 1])}
        rec._track_end = {"tx": len(data), "rx": len(data)}
        rec._length = len(data)
        side = sidecar_path(wav_path)
        if side.exists():
            meta = msgspec.json.decode(side.read_bytes(), type=RecordingSidecar)
            if meta.sample_rate != rate:
                raise ValueError(f"{side}: sample rate {meta.sample_rate} != WAV rate {rate}")
            rec._events = list(meta.events)
            rec.stats = meta.stats
            rec.started_at_unix = meta.started_at_unix
        return rec

    # ------------------------------------------------------------ internals

    @staticmethod
    def _as_int16(pcm: bytes | np.ndarray) -> np.ndarray | None:
        if isinstance(pcm, (bytes, bytearray, memoryview)):
            if len(pcm) % 2:
                return None
            return np.frombuffer(pcm, dtype="<i2").astype(np.int16, copy=False)
        if isinstance(pcm, np.ndarray) and pcm.ndim == 1:
            if pcm.dtype == np.int16:
                return pcm
            if np.issubdtype(pcm.dtype, np.floating):
                if not np.all(np.isfinite(pcm)):
                    return None
                return (np.clip(pcm, -1.0, 1.0) * 32767.0).round().astype(np.int16)
        return None

    def _ensure_capacity(self, track: str, end: int) -> np.ndarray:
        buf = self._tracks[track]
        if end > len(buf):
            grown = np.zeros(max(end, 2 * len(buf), self.sample_rate), np.int16)
            grown[: len(buf)] = buf
            self._tracks[track] = buf = grown
        return buf
