"""The simulated caller's mouth: plays utterances into the call and records what was sent.

Like a real phone, the line sends continuous audio: between utterances it keeps the
session's playout queue topped up with one or two frames of silence, so an utterance starts
at the next 20 ms tick and the agent's jitter buffer never sees the stream stop. An utterance
is recorded on track ``tx`` as the line carries it (through the call's codec and back), where
it really went out, and only as much of it as was sent (a hang-up can cut it): while it
plays, the line samples the playout queue's per-mark progress (samples sent, send time of
the latest frame, stamped by the RTP clock) every few ms, and places each stretch of frames
so that its last frame sits at that frame's send time. A stalled
event loop delays the rest of an utterance (RtpSession resynchronises its clock instead of
bursting); the recording then shows the gap where it happened, not a contiguous utterance.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgspec
import numpy as np

from theo_ray.media.codecs import through_codec
from theo_ray.media.playout import PlayoutEvent
from theo_ray.media.rtp_session import RtpSession
from theo_ray.sim.recording import CallRecording

_LINE_MARK = "line-silence"
# How often an utterance's send progress is sampled (well under one 20 ms frame).
_PROGRESS_POLL_S = 0.005


class SentUtterance(msgspec.Struct, frozen=True):
    """When an utterance went out (clock times) and where it sits in the recording."""

    mark: str
    started_at: float | None  # first frame sent; None if nothing was sent
    ended_at: float | None  # last sent sample's end on the wire
    samples: int  # enqueued, at the recording rate
    sent_samples: int  # recorded, at the recording rate
    start_sample: int = -1  # first sent sample's position on the recording's timeline
    end_sample: int = -1  # one past the last sent sample's position
    cut: bool = False  # stopped before the end (hang-up, timeout)
    stretches: int = 0  # >1: the sending was interrupted (event-loop stall) and resumed


class CallerLine:
    """Sends the caller's audio on a started RtpSession whose ``model_rate`` is the recording's rate."""

    def __init__(
        self,
        session: RtpSession,
        recording: CallRecording,
        send_silence: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if session.model_rate != recording.sample_rate:
            raise ValueError("the caller's RtpSession must take PCM at the recording's rate")
        self.session = session
        self.recording = recording
        self.send_silence = send_silence
        self.clock = clock
        self.ptime_s = session.settings.ptime_ms / 1000.0
        self._silence = np.zeros(recording.sample_rate * session.settings.ptime_ms // 1000, np.int16)
        self._current: str | None = None
        self._started: dict[str, float] = {}
        self._done: dict[str, asyncio.Event] = {}
        self._filler: asyncio.Task | None = None
        self._listening = False
        self._count = 0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if not self._listening:
            assert self.session.playout is not None, "start() the RtpSession first"
            self.session.playout.add_listener(self._on_playout)
            self._listening = True
        if self.send_silence and self._filler is None:
            self._filler = asyncio.create_task(self._fill(), name="caller-line-silence")

    async def stop(self) -> None:
        if self._filler is not None:
            self._filler.cancel()
            await asyncio.gather(self._filler, return_exceptions=True)
            self._filler = None
        if self.session.playout is not None and self.session.running:
            self.session.flush()

    async def _fill(self) -> None:
        playout = self.session.playout
        while True:
            playout = self.session.playout  # start() again (re-INVITE) replaces the queue
            if playout is not None and playout.pending_samples < 2 * playout.frame_samples:
                self.session.enqueue(self._silence, _LINE_MARK)
            await asyncio.sleep(self.ptime_s / 2)

    def _on_playout(self, event: PlayoutEvent) -> None:
        # Runs on the RTP clock tick, in the event loop's thread.
        if event.kind == "mark_started" and event.mark in self._done:
            self._started.setdefault(event.mark, event.at)
        elif event.kind in ("mark_done", "flushed") and event.mark in self._done:
            self._done[event.mark].set()
        elif event.kind in ("idle", "flushed") and self._current in self._done:
            self._done[self._current].set()

    # ------------------------------------------------------------ speaking

    async def speak(self, pcm: np.ndarray, at: float | None = None, timeout_s: float = 30.0) -> SentUtterance:
        """Play ``pcm`` (int16 at the recording rate); returns once its last frame was sent.

        ``at`` (clock time) asks for the first frame to go out then: the audio is queued half
        a frame early, so it leaves on the RTP tick nearest to ``at``.
        """
        if at is not None:
            wait = at - self.ptime_s / 2 - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
        self._count += 1
        mark = f"caller-{self._count}"
        self._current = None
        self.session.flush()  # drop the queued line silence: the utterance goes out next tick
        done = self._done[mark] = asyncio.Event()
        self._current = mark
        self.session.enqueue(pcm, mark, last=True)
        carried = self._as_carried(pcm)
        progress: list[tuple[int, float]] = []  # (network-rate samples sent, send time of that frame)
        duration = len(pcm) / self.recording.sample_rate
        deadline = self.clock() + duration + timeout_s
        cut = False
        try:
            while not done.is_set():
                self._sample_progress(mark, progress)
                if self.clock() > deadline:
                    cut = True
                    break
                await asyncio.sleep(_PROGRESS_POLL_S)
        finally:
            self._sample_progress(mark, progress)
            result = self._finish(mark, carried, progress, cut)
        return result

    def _as_carried(self, pcm: np.ndarray) -> np.ndarray:
        """What the line carries of ``pcm`` (recording rate): through the call's codec and
        back. Track ``tx`` records this, so the caller's speech edges are the ones the far end
        can hear: over G.711 nothing above 4 kHz arrives, and a final "s" that the full-band
        voice still has is silence on the line."""
        codec = self.session.codec
        if codec is None:
            return pcm
        return through_codec(pcm, self.recording.sample_rate, codec.name, self.session.settings.ptime_ms)

    def _sample_progress(self, mark: str, progress: list[tuple[int, float]]) -> None:
        playout = self.session.playout
        state = playout.progress(mark) if playout is not None else None
        if state is None or state.last_sent_at is None:
            return
        if not progress or state.sent_samples > progress[-1][0]:
            progress.append((state.sent_samples, state.last_sent_at))

    def _finish(self, mark: str, pcm: np.ndarray, progress: list[tuple[int, float]], cut: bool) -> SentUtterance:
        self._current = None
        self._done.pop(mark, None)
        started = self._started.pop(mark, None)
        playout = self.session.playout
        state = playout.progress(mark) if playout is not None else None
        if state is None or not state.enqueued_samples or not progress or started is None:
            return SentUtterance(mark, None, None, len(pcm), 0, cut=True)
        # Network-rate sample n of the mark -> sample of the PCM we enqueued (same duration).
        ratio = len(pcm) / state.enqueued_samples
        frame = playout.frame_samples
        net_rate = playout.sample_rate
        first = end = -1
        ended_at: float | None = None
        done_net = 0
        for sent, sent_at in progress:
            # The frame ending at `sent` went out at `sent_at` and began at a multiple of
            # `frame` (the mark started on a frame boundary after the flush): samples
            # [done_net, sent) play back to back up to it.
            frame_start = (sent - 1) // frame * frame
            chunk_at = sent_at - (frame_start - done_net) / net_rate
            lo, hi = round(done_net * ratio), min(len(pcm), round(sent * ratio))
            at_sample = self.recording.sample_at(chunk_at)
            if hi > lo:
                self.recording.write("tx", pcm[lo:hi], at_sample)
                first = at_sample if first < 0 else first
                end = at_sample + (hi - lo)
                ended_at = chunk_at + (hi - lo) / self.recording.sample_rate
            done_net = sent
        sent_samples = min(len(pcm), round(done_net * ratio))
        cut = cut or done_net < state.enqueued_samples
        return SentUtterance(
            mark, started, ended_at, len(pcm), sent_samples, first, end, cut, stretches=_stretches(progress, frame, net_rate)
        )


def _stretches(progress: list[tuple[int, float]], frame: int, net_rate: int) -> int:
    """How many back-to-back runs the frames were sent in (a gap over half a frame splits)."""
    runs = 1
    for (s0, t0), (s1, t1) in zip(progress, progress[1:]):
        expected = (((s1 - 1) // frame) - ((s0 - 1) // frame)) * frame / net_rate
        if t1 - t0 - expected > frame / net_rate / 2:
            runs += 1
    return runs
