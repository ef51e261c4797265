"""The simulated caller's mouth: plays utterances into the call and records what was sent.

Like a real phone, the line sends continuous audio: between utterances it keeps the
session's playout queue topped up with one or two frames of silence, so an utterance starts
at the next 20 ms tick and the agent's jitter buffer never sees the stream stop. An utterance
is recorded on track ``tx`` at the sample position of the instant its first frame was sent
(the playout queue's ``mark_started`` event, stamped by the RTP clock), and only as much of
it as was really sent (a hang-up can cut it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgspec
import numpy as np

from theo_ray.media.playout import PlayoutEvent
from theo_ray.media.rtp_session import RtpSession
from theo_ray.sim.recording import CallRecording

_LINE_MARK = "line-silence"


class SentUtterance(msgspec.Struct, frozen=True):
    """When an utterance went out (clock times) and how much of it was sent."""

    mark: str
    started_at: float | None  # first frame sent; None if nothing was sent
    ended_at: float | None  # last sample's end on the wire
    samples: int  # enqueued, at the recording rate
    sent_samples: int  # recorded, at the recording rate
    start_sample: int = -1  # position on the recording's timeline
    cut: bool = False  # stopped before the end (hang-up, timeout)


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
        duration = len(pcm) / self.recording.sample_rate
        cut = False
        try:
            await asyncio.wait_for(done.wait(), duration + timeout_s)
        except TimeoutError:
            cut = True
        except asyncio.CancelledError:
            self._finish(mark, pcm, cut=True)
            raise
        return self._finish(mark, pcm, cut)

    def _finish(self, mark: str, pcm: np.ndarray, cut: bool) -> SentUtterance:
        self._current = None
        self._done.pop(mark, None)
        started = self._started.pop(mark, None)
        playout = self.session.playout
        progress = playout.progress(mark) if playout is not None else None
        rate = self.recording.sample_rate
        if progress is not None and progress.enqueued_samples:
            # Sent share of the network-rate samples -> samples of the PCM we enqueued.
            sent = min(len(pcm), round(len(pcm) * progress.sent_samples / progress.enqueued_samples))
            cut = cut or progress.sent_samples < progress.enqueued_samples
        else:
            sent = 0
        if started is None or sent == 0:
            return SentUtterance(mark, None, None, len(pcm), 0, cut=True)
        start_sample = self.recording.sample_at(started)
        self.recording.write("tx", pcm[:sent], start_sample)
        return SentUtterance(mark, started, started + sent / rate, len(pcm), sent, start_sample, cut)
