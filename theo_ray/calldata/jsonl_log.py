"""The local call log: one JSON line per turn and one per call summary, rotated by size.

Owns `calls.jsonl` under `call_data.jsonl.dir` (default `<paths.output_dir>/call-data`):
each line is a document with a leading `"kind"` ("turn" or "call"); a call's turn lines
come first, then its summary. Before a write would take the file past `max_bytes` it is
rotated (`calls.jsonl` -> `calls.jsonl.1` -> `.2` ..., the oldest beyond `keep_files`
deleted). Writes happen in a worker thread fed by the sink's background task; the call
path only submits.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import msgspec

from theo_ray.calldata.documents import CallDocuments
from theo_ray.calldata.settings import JsonlLogSettings
from theo_ray.calldata.sink import Inbox, SinkStats, wait_until

log = logging.getLogger("theo.calldata")
_encoder = msgspec.json.Encoder()


def jsonl_lines(documents: CallDocuments) -> list[bytes]:
    """The call's lines: its turns in order, then its summary."""
    out = [b'{"kind":"turn",' + _encoder.encode(turn)[1:] + b"\n" for turn in documents.turns]
    out.append(b'{"kind":"call",' + _encoder.encode(documents.call)[1:] + b"\n")
    return out


class RotatingFile:
    """Append-only file rotated by size (synchronous; one writer)."""

    def __init__(self, path: Path, max_bytes: int, keep_files: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep_files = keep_files
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")
        self._size = self._file.tell()
        self.rotations = 0

    def write_lines(self, lines: list[bytes]) -> None:
        for line in lines:
            if self._size and self._size + len(line) > self.max_bytes:
                self.rotate()
            self._file.write(line)
            self._size += len(line)
        self._file.flush()

    def rotate(self) -> None:
        self._file.close()
        for n in range(self.keep_files, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if n == self.keep_files:
                older.unlink(missing_ok=True)
            elif older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = open(self.path, "ab")
        self._size = 0
        self.rotations += 1

    def close(self) -> None:
        self._file.close()


class JsonlCallLog:
    name = "jsonl"

    def __init__(self, settings: JsonlLogSettings, folder: Path, max_calls_waiting: int = 1000) -> None:
        self.settings = settings
        self.path = Path(folder) / settings.file_name
        self._inbox = Inbox(self.name, max_calls_waiting)
        self._file: RotatingFile | None = None
        self._task: asyncio.Task | None = None
        self._written = 0
        self._in_hand = 0  # documents taken from the inbox, not yet written
        self._last_error = ""
        self._rotations_before_close = 0

    async def start(self) -> None:
        self._file = await asyncio.to_thread(RotatingFile, self.path, self.settings.max_bytes, self.settings.keep_files)
        self._task = asyncio.create_task(self._run(), name="calldata-jsonl")

    def submit(self, documents: CallDocuments) -> None:
        self._inbox.put(documents)

    async def _run(self) -> None:
        while True:
            batch = await self._inbox.take()
            count = sum(1 + len(documents.turns) for documents in batch)
            self._in_hand = count
            try:
                # Encoding and writing in the worker thread: the loop stays free.
                await asyncio.to_thread(self._write, batch)
                self._written += count
            except OSError as exc:  # a full disk: counted and logged, the task goes on
                self._last_error = f"{type(exc).__name__}: {exc}"
                self._inbox.dropped_documents += count
                log.error("call-data log %s: write failed: %s", self.path, exc)
            finally:
                self._in_hand = 0

    def _write(self, batch: list[CallDocuments]) -> None:
        self._file.write_lines([line for documents in batch for line in jsonl_lines(documents)])

    async def flush(self, timeout_s: float = 30.0) -> bool:
        return await wait_until(lambda: self._inbox.queue.empty() and not self._in_hand, timeout_s)

    async def close(self) -> None:
        await self.flush(5.0)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._file is not None:
            # Whatever is still in the inbox goes to the file before it closes.
            while not self._inbox.queue.empty():
                lines = jsonl_lines(self._inbox.queue.get_nowait())
                self._file.write_lines(lines)
                self._written += len(lines)
            self._file.close()
            self._rotations_before_close = self._file.rotations
            self._file = None

    def stats(self) -> SinkStats:
        return SinkStats(
            name=self.name, submitted_calls=self._inbox.submitted, documents_written=self._written,
            dropped=self._inbox.dropped_documents, pending_documents=self._inbox.documents_waiting() + self._in_hand,
            ready=self._file is not None, last_error=self._last_error,
        )

    @property
    def rotations(self) -> int:
        return self._file.rotations if self._file else self._rotations_before_close
