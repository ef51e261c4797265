"""Energy speech detection on one recorded track: where there is audio, to the sample.

Owns :class:`VadSettings`, :class:`SpeechRegion`, :class:`TrackLevels` and
:func:`detect_speech`, whose threshold is relative to the track's own noise floor, so the
agent's comfort noise (~-60 dBFS) is not agent audio. Why a hand-written energy detector and
not Silero VAD: the question is "is there *audio* on the line", not "is this human speech" —
a tone or a click the agent sends counts too — and it must be exact to the sample on
synthetic test signals, with no model to load. :mod:`theo_ray.sim.analysis` builds a call's
measurements on these regions; :mod:`theo_ray.sim.agent_audio` is its streaming form.
"""

from __future__ import annotations

import msgspec
import numpy as np

# Frames with no signal at all (digital silence) are left out of the noise-floor estimate.
_DIGITAL_SILENCE_DBFS = -90.0


class VadSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Energy speech detector. Threshold = noise floor + ``snr_margin_db``, clamped to
    [``min_threshold_dbfs``, ``max_threshold_dbfs``]; the floor is the ``noise_percentile``-th
    percentile of the track's frame levels (digital silence excluded)."""

    frame_ms: int = 10
    noise_percentile: float = 10.0
    snr_margin_db: float = 15.0
    min_threshold_dbfs: float = -55.0
    # A track that is nearly all speech has a "floor" at speech level; this keeps speech detectable.
    max_threshold_dbfs: float = -40.0
    # Bursts shorter than this are clicks, not speech.
    min_speech_ms: int = 40
    # Gaps inside speech (stop consonants, short breaths) shorter than this do not split a region.
    merge_gap_ms: int = 200


class SpeechRegion(msgspec.Struct, frozen=True):
    start_ms: float
    end_ms: float

    @property
    def duration_ms(self) -> float:
        return self.end_ms - self.start_ms


class TrackLevels(msgspec.Struct, frozen=True):
    """What the detector decided for one track."""

    noise_floor_dbfs: float
    threshold_dbfs: float
    # 95th percentile frame level of detected speech (None: no speech).
    speech_level_dbfs: float | None


def frame_levels_dbfs(samples: np.ndarray, frame_len: int) -> np.ndarray:
    """RMS level of each whole frame in dBFS (int16 full scale = 0 dBFS); digital silence ~ -120."""
    n = len(samples) // frame_len
    if n == 0:
        return np.zeros(0)
    frames = samples[: n * frame_len].astype(np.float64).reshape(n, frame_len) / 32768.0
    return 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)


def detect_speech(
    samples: np.ndarray, sample_rate: int, vad: VadSettings = VadSettings()
) -> tuple[list[SpeechRegion], TrackLevels]:
    """Speech regions of one int16 track and the levels the decision used."""
    frame_len = max(1, sample_rate * vad.frame_ms // 1000)
    levels = frame_levels_dbfs(samples, frame_len)
    audible = levels[levels > _DIGITAL_SILENCE_DBFS]
    floor = float(np.percentile(audible, vad.noise_percentile)) if audible.size else -120.0
    threshold = min(max(floor + vad.snr_margin_db, vad.min_threshold_dbfs), vad.max_threshold_dbfs)
    active = levels > threshold

    # Runs of active frames, as [start_frame, end_frame).
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    runs = list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))
    merge_frames = vad.merge_gap_ms / vad.frame_ms
    merged: list[list[int]] = []
    for start, end in runs:
        if merged and start - merged[-1][1] < merge_frames:
            merged[-1][1] = end
        else:
            merged.append([int(start), int(end)])

    # Refine each edge to the sample: the first/last sample whose amplitude reaches the
    # threshold's RMS level, searched within the edge frames (and the frame before the onset).
    amp = 32768.0 * 10 ** (threshold / 20.0)
    regions: list[SpeechRegion] = []
    speech_levels: list[np.ndarray] = []
    for start_f, end_f in merged:
        if (end_f - start_f) * vad.frame_ms < vad.min_speech_ms:
            continue
        lo = max(0, (start_f - 1) * frame_len)
        head = np.flatnonzero(np.abs(samples[lo : (start_f + 1) * frame_len].astype(np.int32)) >= amp)
        start_s = lo + int(head[0]) if head.size else start_f * frame_len
        tail_lo = (end_f - 1) * frame_len
        tail = np.flatnonzero(np.abs(samples[tail_lo : end_f * frame_len].astype(np.int32)) >= amp)
        end_s = tail_lo + int(tail[-1]) + 1 if tail.size else end_f * frame_len
        regions.append(SpeechRegion(sample_ms(start_s, sample_rate), sample_ms(end_s, sample_rate)))
        speech_levels.append(levels[start_f:end_f])
    speech = np.concatenate(speech_levels) if speech_levels else np.zeros(0)
    return regions, TrackLevels(
        noise_floor_dbfs=round(floor, 1),
        threshold_dbfs=round(threshold, 1),
        speech_level_dbfs=round(float(np.percentile(speech, 95)), 1) if speech.size else None,
    )


def sample_ms(sample: int, rate: int) -> float:
    """A sample index as milliseconds from the start of the track (0.01 ms steps)."""
    return round(float(sample) * 1000.0 / rate, 2)
