"""A WAV file written by a thread of its own, chunk by chunk, from a bounded queue.

Owns the file side of a call recording: creating the folder and the file, appending
interleaved int16 frames as they come, keeping the header valid after every chunk (so a
process killed mid-call leaves a playable file), and closing it. The event loop only ever
calls `submit()`, which never blocks: a full queue (the disk is slower than the call) drops
that chunk and counts it, and the chunk after it is placed at its own frame position with
silence in between, so the file's timeline stays the call's.

A write that fails (disk full, permission, a missing mount) is counted and logged once; the
writer then discards what still comes. It never raises into the call.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import wave
from pathlib import Path

log = logging.getLogger("theo.recording")



class WavChunkWriter:
    def __init__(self, path: Path, sample_rate: int, channels: int = 2, max_chunks: int = 32) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.channels = channels
        self._frame_bytes = 2 * channels
        # (start frame, interleaved int16); data None = the end, padded to that frame.
        self._queue: queue.Queue[tuple[int, bytes | None]] = queue.Queue(maxsize=max(1, max_chunks))
        self.frames_written = 0  # audio frames in the file (one frame = one sample per channel)
        self.chunks_dropped = 0  # refused by a full queue or after a failure
        self.error = ""  # the first failure, "" while all is well
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"wav-writer-{path.name}", daemon=True)
        self._thread.start()

    def submit(self, start_frame: int, data: bytes) -> bool:
        """Queue `data` (interleaved int16) to be written at frame `start_frame`; never blocks.
        False when it was dropped (queue full, writer failed or closed)."""
        if self._closed or self.error:
            self.chunks_dropped += 1
            return False
        try:
            self._queue.put_nowait((start_frame, data))
        except queue.Full:
            self.chunks_dropped += 1
            if self.chunks_dropped == 1:
                log.warning("recording %s: the disk is behind, a chunk was dropped (silence in its place)", self.path)
            return False
        return True

    def close(self, total_frames: int = 0, timeout_s: float = 3.0) -> None:
        """Write what is queued, pad with silence to `total_frames` (chunks dropped at the end
        keep their time too), fix the header and close the file. Blocking: run it in an
        executor. A writer stuck on its disk past `timeout_s` in all is left behind (daemon
        thread): the CallActor's close must stay well inside the supervisor's wait for it."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout_s
        try:
            self._queue.put((total_frames, None), timeout=timeout_s)
        except queue.Full:
            self._fail(TimeoutError(f"the writer did not drain its queue in {timeout_s} s"))
            return
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self._fail(TimeoutError(f"the writer did not finish in {timeout_s} s"))

    @property
    def duration_s(self) -> float:
        return self.frames_written / self.sample_rate

    def _fail(self, exc: BaseException) -> None:
        if not self.error:
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("recording %s failed: %s (the call goes on unrecorded from here)", self.path, self.error)

    def _open(self) -> wave.Wave_write | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            wav = wave.open(str(self.path), "wb")
        except (OSError, wave.Error) as exc:
            self._fail(exc)
            return None
        wav.setnchannels(self.channels)
        wav.setsampwidth(2)
        wav.setframerate(self.sample_rate)
        return wav

    def _run(self) -> None:
        wav = self._open()
        while True:
            start, data = self._queue.get()
            if wav is None or self.error:
                if data is None:
                    break
                self.chunks_dropped += 1
                continue
            try:
                gap = start - self.frames_written
                if gap > 0:  # a dropped chunk: its time stays, as silence
                    wav.writeframes(bytes(gap * self._frame_bytes))
                    self.frames_written += gap
                if data is None:
                    break
                # writeframes (not ...raw): the header is rewritten after each chunk.
                wav.writeframes(data)
                self.frames_written += len(data) // self._frame_bytes
            except (OSError, wave.Error) as exc:
                self._fail(exc)
        if wav is not None:
            try:
                wav.close()
            except (OSError, wave.Error) as exc:
                self._fail(exc)
