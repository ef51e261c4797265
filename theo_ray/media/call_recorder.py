"""A call's stereo recording on the RTP session's own clock: left = the caller as received
(decoded after the jitter buffer and PLC), right = the agent as played out.

Owns placing the two directions on one timeline. The session calls `agent(pcm, deadline)`
at every tick of its 20 ms clock (None: nothing was played) and `caller(pcm, at)` for every
decoded caller frame, both at the codec's rate. Tick k's deadline is slot k; a caller frame
goes to the slot of the instant it was handed out (in clock delivery exactly its tick),
or to the next free one when a burst after a late packet hands out several at once (the
caller's side then runs behind by the burst until its next pause: a silent frame that comes
while behind is left out, closing the gap). So what the caller said while the agent spoke
sits in the same slots, and a side that says nothing is silence. Slots a few ticks old are final: they are cut into chunks of
`chunk_s` and handed to a `WavChunkWriter` thread, so memory stays a few seconds of audio
however long the call, and the event loop never touches the disk.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path

import msgspec
import numpy as np

from theo_ray.media.wav_chunk_writer import WavChunkWriter

# Slots kept open behind the clock: a caller frame is handed out at most a tick after its
# slot in clock delivery, so two are plenty.
HOLD_SLOTS = 2
QUIET_RMS = 60.0  # int16; about -55 dBFS: a caller frame this quiet is silence
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class RecordingResult(msgspec.Struct, frozen=True):
    path: str
    duration_ms: float
    error: str = ""  # "" = written whole
    chunks_dropped: int = 0  # disk too slow (silence in their place) or after a failure
    caller_frames_dropped: int = 0  # caller frames too far ahead of the clock
    caller_silence_skipped: int = 0  # silent caller frames left out to catch up after a burst


def recording_path(directory: str | Path, session_id: str, wall_time: float) -> Path:
    """`<directory>/<UTC yyyymmddThhmmss.mmm>_<session id>.wav`: unique per CallActor even
    when a replacement takes a call over within the same second."""
    stamp = dt.datetime.fromtimestamp(wall_time, dt.timezone.utc)
    name = f"{stamp:%Y%m%dT%H%M%S}.{stamp.microsecond // 1000:03d}_{_UNSAFE.sub('_', session_id) or 'call'}.wav"
    return Path(directory).expanduser() / name


class CallRecorder:
    def __init__(
        self,
        path: Path,
        sample_rate: int,
        ptime_ms: int = 20,
        chunk_s: float = 1.0,
        queue_chunks: int = 32,
        max_caller_lead_ms: float = 1000.0,
        close_timeout_s: float = 3.0,  # a disk stuck longer is left behind (the error says so)
    ) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self._ptime = ptime_ms / 1000.0
        self._slot_samples = sample_rate * ptime_ms // 1000
        self._chunk_slots = max(1, round(chunk_s / self._ptime))
        self._max_lead = max(HOLD_SLOTS, round(max_caller_lead_ms / ptime_ms))
        self._close_timeout_s = close_timeout_s
        self._writer = WavChunkWriter(path, sample_rate, channels=2, max_chunks=queue_chunks)
        self._origin: float | None = None  # the first tick's deadline = slot 0
        self._pending: dict[int, np.ndarray] = {}  # slot -> (samples, 2), not final yet
        self._final = 0  # slots below this are in a chunk
        self._clock_slot = -1  # the latest tick's slot
        self._caller_next = 0  # the caller's next free slot
        self._chunk = self._new_chunk()
        self._chunk_start = 0  # the chunk's first slot
        self.caller_frames_dropped = 0
        self.caller_silence_skipped = 0
        self._closed = False

    # ------------------------------------------------------------ the session's taps

    def caller(self, pcm: np.ndarray, at: float) -> None:
        """A decoded caller frame (codec rate), handed out at clock time `at`."""
        if self._closed:
            return
        if self._origin is None:
            slot = self._caller_next
        else:
            due = self._slot_of(at)
            if self._caller_next > due and _quiet(pcm):
                self.caller_silence_skipped += 1  # behind after a burst: catch up in a pause
                return
            slot = max(self._caller_next, due)
        slot = max(slot, self._final)
        if slot > max(self._clock_slot, 0) + self._max_lead:
            self.caller_frames_dropped += 1  # never happens with a sane jitter buffer: bounded memory
            return
        self._slot(slot)[:, 0] = self._fit(pcm)
        self._caller_next = slot + 1

    def agent(self, pcm: np.ndarray | None, deadline: float) -> None:
        """The tick at `deadline` played `pcm` (codec rate), or nothing (None)."""
        if self._closed:
            return
        if self._origin is None:
            self._origin = deadline
        slot = self._slot_of(deadline)
        if slot < self._final:
            return  # cannot happen on a monotonic clock; never rewrite a final slot
        if pcm is not None:
            self._slot(slot)[:, 1] = self._fit(pcm)
        self._clock_slot = max(self._clock_slot, slot)
        self._finalize(self._clock_slot - HOLD_SLOTS + 1)

    # ------------------------------------------------------------ end

    async def close(self) -> RecordingResult:
        """Everything still open goes to the file; the writer thread finishes off the loop."""
        if not self._closed:
            self._closed = True
            last = max([self._clock_slot, *self._pending]) if self._pending else self._clock_slot
            self._finalize(last + 1)
            self._flush_chunk()
            total = self._final * self._slot_samples
            await asyncio.get_running_loop().run_in_executor(None, self._writer.close, total, self._close_timeout_s)
        return self.result()

    def result(self) -> RecordingResult:
        w = self._writer
        return RecordingResult(
            path=str(self.path), duration_ms=round(w.duration_s * 1000.0, 1), error=w.error,
            chunks_dropped=w.chunks_dropped, caller_frames_dropped=self.caller_frames_dropped,
            caller_silence_skipped=self.caller_silence_skipped,
        )

    # ------------------------------------------------------------ slots and chunks

    def _slot_of(self, t: float) -> int:
        assert self._origin is not None
        return max(0, round((t - self._origin) / self._ptime))

    def _slot(self, slot: int) -> np.ndarray:
        frame = self._pending.get(slot)
        if frame is None:
            frame = self._pending[slot] = np.zeros((self._slot_samples, 2), dtype=np.int16)
        return frame

    def _fit(self, pcm: np.ndarray) -> np.ndarray:
        """One slot's samples; a frame of another length (a re-INVITE's codec at another
        rate) is resampled linearly to it rather than dropped."""
        n = self._slot_samples
        if pcm.size == n:
            return pcm
        if pcm.size == 0:
            return np.zeros(n, dtype=np.int16)
        x = np.linspace(0.0, pcm.size - 1, n)
        return np.interp(x, np.arange(pcm.size), pcm.astype(np.float32)).astype(np.int16)

    def _new_chunk(self) -> np.ndarray:
        return np.zeros((self._chunk_slots * self._slot_samples, 2), dtype=np.int16)

    def _finalize(self, upto: int) -> None:
        """Slots [final, upto) are done: into the chunk (silence where nothing was placed)."""
        n = self._slot_samples
        while self._final < upto:
            frame = self._pending.pop(self._final, None)
            index = self._final - self._chunk_start
            if frame is not None:
                self._chunk[index * n:(index + 1) * n] = frame
            self._final += 1
            if self._final - self._chunk_start == self._chunk_slots:
                self._flush_chunk()

    def _flush_chunk(self) -> None:
        filled = self._final - self._chunk_start
        if filled <= 0:
            return
        data = self._chunk[: filled * self._slot_samples].tobytes()
        self._writer.submit(self._chunk_start * self._slot_samples, data)
        self._chunk_start = self._final
        self._chunk = self._new_chunk()


def _quiet(pcm: np.ndarray) -> bool:
    return pcm.size == 0 or float(np.sqrt(np.mean(pcm.astype(np.float32) ** 2))) < QUIET_RMS
