"""What the simulated caller hears, live: the agent's frames go into the recording at their
arrival time, and an energy detector follows the agent's speech and turns as they happen, so
the scenario can wait for the agent to start or finish and barge in N ms into its turn.

The detector is the streaming form of :func:`theo_ray.sim.speech_regions.detect_speech`: the same
:class:`VadSettings` (10 ms level frames, threshold = noise floor + margin clamped to
[min, max] dBFS, digital silence left out of the floor, bursts under ``min_speech_ms`` ignored,
gaps under ``merge_gap_ms`` bridged) and the same ``agent_turn_gap_ms`` grouping of regions into
turns, with the floor taken over the last few seconds instead of the whole call. Comfort noise
at -60 dBFS sits under the -55 dBFS lowest threshold, so it is never agent speech.

Placement: RtpSession hands frames out after its jitter buffer, stamped with their packet's
arrival. Each frame is put at ``first arrival of its talkspurt + (sequence - first sequence) *
ptime``, kept at the earliest arrival seen (the least-delayed packet is the best estimate of
when the agent sent it), and re-anchored when a packet comes half a ptime or more after its
place: RtpSession sends nothing on a tick with an empty queue and its sequence number then
does not advance (only the RTP timestamp jumps, and InboundFrame does not carry it), so a
paused sender, even for one tick, shows up as a packet at least one ptime "late". Concealed frames (nothing arrived) are not written:
the recording holds what came over the wire.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

import msgspec
import numpy as np

from theo_ray.media.rtp_session import InboundFrame, RtpSession
from theo_ray.sim.analysis import AnalysisSettings
from theo_ray.sim.speech_regions import VadSettings, frame_levels_dbfs
from theo_ray.sim.recording import CallRecording

# Matches analysis.py: frames at or below this are digital silence, not a noise floor.
_DIGITAL_SILENCE_DBFS = -90.0


class AgentAudioStats(msgspec.Struct):
    frames_received: int = 0
    frames_concealed: int = 0  # ticks with no packet: not written to the recording
    frames_dropped_malformed: int = 0
    timeline_resyncs: int = 0  # talkspurt re-anchors
    speech_onsets: int = 0
    turns: int = 0


class AgentTurnLive(msgspec.Struct):
    """One agent turn as it is heard (clock times); ``end`` moves while the turn goes on."""

    index: int  # from 1: the greeting is turn 1
    start: float
    end: float


class ArrivalTimeline:
    """Clock time of each received frame: consecutive sequences play back to back."""

    def __init__(self, ptime_s: float, resync_s: float | None = None) -> None:
        self.ptime_s = ptime_s
        self.resync_s = ptime_s / 2 if resync_s is None else resync_s
        self.resyncs = 0
        self._anchor_t: float | None = None
        self._anchor_seq = 0

    def place(self, sequence: int, received_at: float) -> float:
        if self._anchor_t is None:
            self._anchor_t, self._anchor_seq = received_at, sequence
            return received_at
        delta = (sequence - self._anchor_seq) & 0xFFFF
        if delta >= 0x8000:  # older than the anchor (reordered) or a restarted stream
            self._anchor_t, self._anchor_seq = received_at, sequence
            self.resyncs += 1
            return received_at
        predicted = self._anchor_t + delta * self.ptime_s
        if received_at > predicted + self.resync_s:
            self.resyncs += 1
            self._anchor_t, self._anchor_seq = received_at, sequence
            return received_at
        if received_at < predicted:
            self._anchor_t, self._anchor_seq = received_at, sequence
            return received_at
        return predicted


class StreamingSpeechDetector:
    """Energy detector fed frame by frame; reports speech onsets and the last speech instant."""

    def __init__(self, sample_rate: int, vad: VadSettings = VadSettings(), floor_window_s: float = 3.0) -> None:
        self.vad = vad
        self.frame_len = max(1, sample_rate * vad.frame_ms // 1000)
        self.frame_s = self.frame_len / sample_rate
        self._levels: deque[float] = deque(maxlen=max(1, int(floor_window_s * 1000 / vad.frame_ms)))
        self.threshold_dbfs = vad.min_threshold_dbfs
        self.in_speech = False
        self.last_speech_end: float | None = None  # clock time just after the last speech frame
        self._run_start: float | None = None
        self._run_active_s = 0.0
        self._run_last_end = 0.0

    def feed(self, pcm: np.ndarray, t0: float) -> list[float]:
        """Feed int16 samples starting at clock time ``t0``; returns onsets confirmed by them."""
        levels = frame_levels_dbfs(pcm, self.frame_len)
        if self._levels:
            window = np.fromiter(self._levels, dtype=np.float64)
            floor = float(np.percentile(window, self.vad.noise_percentile))
        else:
            floor = -120.0
        vad = self.vad
        self.threshold_dbfs = min(max(floor + vad.snr_margin_db, vad.min_threshold_dbfs), vad.max_threshold_dbfs)
        merge_s = vad.merge_gap_ms / 1000.0
        onsets: list[float] = []
        for i, level in enumerate(levels):
            t = t0 + i * self.frame_s
            if level > _DIGITAL_SILENCE_DBFS:
                self._levels.append(float(level))
            if level > self.threshold_dbfs:
                if self._run_start is None or t - self._run_last_end >= merge_s:
                    self._run_start, self._run_active_s = t, 0.0
                self._run_active_s += self.frame_s
                self._run_last_end = t + self.frame_s
                if not self.in_speech and self._run_active_s * 1000.0 >= vad.min_speech_ms - 1e-6:
                    self.in_speech = True
                    onsets.append(self._run_start)
                if self.in_speech:
                    self.last_speech_end = self._run_last_end
            elif self.in_speech and self.last_speech_end is not None and t - self.last_speech_end >= merge_s:
                self.in_speech = False
        return onsets


class AgentAudioWatcher:
    """Reads a session's inbound frames: records them (track rx) and follows the agent's turns."""

    def __init__(
        self,
        session: RtpSession,
        recording: CallRecording,
        analysis: AnalysisSettings = AnalysisSettings(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.recording = recording
        self.turn_gap_s = analysis.agent_turn_gap_ms / 1000.0
        self.clock = clock
        self.stats = AgentAudioStats()
        self.detector = StreamingSpeechDetector(recording.sample_rate, analysis.vad)
        self.timeline = ArrivalTimeline(session.settings.ptime_ms / 1000.0)
        self.turns: list[AgentTurnLive] = []
        # How long after its arrival a frame reaches us (the jitter buffer's delay).
        self.lag_s = session.jitter_depth_ms / 1000.0
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="agent-audio-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        async for frame in self.session.frames():
            self.on_frame(frame)

    # ------------------------------------------------------------ frames

    def on_frame(self, frame: InboundFrame) -> None:
        pcm = frame.pcm
        if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16 or pcm.ndim != 1:
            self.stats.frames_dropped_malformed += 1
            return
        if frame.concealed or frame.received_at <= 0.0:
            self.stats.frames_concealed += 1
            self._changed.set()  # time moved on: "agent finished" waits re-check
            return
        self.stats.frames_received += 1
        t = self.timeline.place(frame.sequence, frame.received_at)
        self.stats.timeline_resyncs = self.timeline.resyncs
        self.lag_s = max(0.0, self.clock() - frame.received_at)
        self.recording.write("rx", pcm, self.recording.sample_at(t))
        previous_end = self.detector.last_speech_end
        for onset in self.detector.feed(pcm, t):
            self.stats.speech_onsets += 1
            if not self.turns or previous_end is None or onset - previous_end >= self.turn_gap_s:
                self.turns.append(AgentTurnLive(len(self.turns) + 1, onset, onset))
                self.stats.turns = len(self.turns)
        if self.turns and self.detector.last_speech_end is not None:
            self.turns[-1].end = max(self.turns[-1].end, self.detector.last_speech_end)
        self._changed.set()

    # ------------------------------------------------------------ queries

    @property
    def speaking(self) -> bool:
        """Agent speech within the detector's merge gap of what has been heard so far.

        Time-based rather than the detector's state: when the agent stops sending, only
        concealed ticks arrive, which the detector never sees.
        """
        end = self.detector.last_speech_end
        return end is not None and self.heard_until() - end < self.detector.vad.merge_gap_ms / 1000.0

    @property
    def last_speech_end(self) -> float | None:
        return self.detector.last_speech_end

    def heard_until(self) -> float:
        """Clock time up to which the agent's audio has been looked at."""
        return self.clock() - self.lag_s

    def turn(self, index: int) -> AgentTurnLive | None:
        return self.turns[index - 1] if 0 < index <= len(self.turns) else None

    def speech_since(self, t: float) -> float:
        """Seconds of agent speech heard after clock time ``t`` (its turns, gaps included)."""
        return sum(max(0.0, turn.end - max(turn.start, t)) for turn in self.turns)

    def spoke_since(self, t: float) -> bool:
        """Agent speech at or after clock time ``t`` (or going on now)."""
        end = self.detector.last_speech_end
        return end is not None and (end > t or self.speaking)

    async def wait_change(self, timeout_s: float) -> None:
        """Until the next frame is handled, or ``timeout_s`` passes."""
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), max(0.0, timeout_s))
        except TimeoutError:
            pass
