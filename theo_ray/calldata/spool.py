"""The disk spool: documents wait here, in order, until Elasticsearch has them.

Owns durability and order between "a call ended" and "the cluster acknowledged": every
document is appended (one JSON line, fsynced per batch) to numbered segment files before it
is sent; a cursor file records how far the cluster has acknowledged; segments wholly behind
the cursor are deleted. After an outage or a restart the sender resumes at the cursor, so
documents are replayed in the order they were written. The spool is bounded
(`max_bytes`): once full, new documents are refused and counted (`dropped_full`, an
alert), never kept in memory instead. Thread-safe: one writer task and one sender task
call it from worker threads.

A restarted process never appends to a segment it did not open itself (a crash may have
torn its last line): it starts a new segment, and the reader skips an incomplete last line
of an older segment (counted in `torn_lines`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
import time
from pathlib import Path

import msgspec

log = logging.getLogger("theo.calldata")

_SEGMENT = re.compile(r"^seg-(\d{12})\.jsonl$")


class SpoolInUse(RuntimeError):
    """Another process holds this spool folder."""


class SpoolRecord(msgspec.Struct, array_like=True):
    target: str  # "turns" or "calls": which write alias the document goes to
    doc_id: str
    source: msgspec.Raw  # the document's JSON, written once, sent as is
    enqueued_at: float  # wall clock (for the spool's age)


class SpoolBatch(msgspec.Struct):
    records: list[SpoolRecord]
    end_segment: int
    end_offset: int


class SpoolStats(msgspec.Struct):
    pending_records: int
    pending_bytes: int
    oldest_age_s: float | None
    segments: int
    dropped_full: int
    torn_lines: int
    full: bool


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SpoolRecord)


class DiskSpool:
    def __init__(self, folder: Path, max_bytes: int, segment_bytes: int) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        # One process per spool: a second writer would interleave segments and cursors.
        self._lock_file = open(self.folder / "spool.lock", "a")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise SpoolInUse(f"{self.folder} is used by another process: give each sink its own spool_dir") from None
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._cursor_path = self.folder / "cursor.json"
        self.dropped_full = 0
        self.torn_lines = 0
        self._full_logged = False
        segments = self._segments()
        cursor = self._load_cursor()
        self._read_segment, self._read_offset = cursor if cursor else ((segments[0] if segments else 0), 0)
        if segments and self._read_segment < segments[0]:  # the cursor's segment was consumed and deleted
            self._read_segment, self._read_offset = segments[0], 0
        self._write_segment = (segments[-1] + 1) if segments else max(1, self._read_segment)
        self._write_file = None
        self._sizes = {n: self._path(n).stat().st_size for n in segments}
        self._pending = self._count_pending()
        self._pending_bytes = self.pending_bytes()
        self._oldest: float | None = self._peek_oldest()

    # ------------------------------------------------------------------ files

    def _path(self, n: int) -> Path:
        return self.folder / f"seg-{n:012d}.jsonl"

    def _segments(self) -> list[int]:
        return sorted(int(m.group(1)) for p in self.folder.iterdir() if (m := _SEGMENT.match(p.name)))

    def _load_cursor(self) -> tuple[int, int] | None:
        try:
            data = json.loads(self._cursor_path.read_text())
            return int(data["segment"]), int(data["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _save_cursor(self) -> None:
        tmp = self._cursor_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"segment": self._read_segment, "offset": self._read_offset}))
        os.replace(tmp, self._cursor_path)

    def _lines_from(self, n: int, offset: int):
        """(line, end offset) of every complete line of segment n from offset; a torn last
        line (no newline) of a segment no longer written gives (None, its end)."""
        with open(self._path(n), "rb") as f:
            f.seek(offset)
            for line in f:
                offset += len(line)
                if not line.endswith(b"\n"):
                    if n != self._write_segment:
                        yield None, offset
                    return
                yield line, offset

    def _count_pending(self) -> int:
        count = 0
        for n in sorted(self._sizes):
            if n >= self._read_segment:
                count += sum(1 for line, _ in self._lines_from(n, self._read_offset if n == self._read_segment else 0) if line)
        return count

    def _peek_oldest(self) -> float | None:
        for n in sorted(self._sizes):
            if n < self._read_segment:
                continue
            for line, _ in self._lines_from(n, self._read_offset if n == self._read_segment else 0):
                if line:
                    try:
                        return _decoder.decode(line).enqueued_at
                    except msgspec.DecodeError:
                        continue
        return None

    # ------------------------------------------------------------------ writer side

    def pending_bytes(self) -> int:
        return sum(size for n, size in self._sizes.items() if n >= self._read_segment) - (
            self._read_offset if self._read_segment in self._sizes else 0)

    def append(self, records: list[SpoolRecord]) -> int:
        """Append in order and fsync; returns how many were written (the rest: spool full)."""
        with self._lock:
            written = 0
            data = bytearray()
            room = self.max_bytes - self.pending_bytes()
            for record in records:
                line = _encoder.encode(record) + b"\n"
                if len(data) + len(line) > room:
                    self.dropped_full += len(records) - written
                    if not self._full_logged:
                        log.error("call-data spool full (%d bytes in %s): documents are being dropped", self.max_bytes, self.folder)
                        self._full_logged = True
                    break
                data += line
                written += 1
            if data:
                self._write(bytes(data))
                self._pending += written
                self._pending_bytes = self.pending_bytes()
                if self._oldest is None:
                    self._oldest = records[0].enqueued_at
            return written

    def _write(self, data: bytes) -> None:
        size = self._sizes.get(self._write_segment, 0)
        if self._write_file is not None and size and size + len(data) > self.segment_bytes:
            self._write_file.close()
            self._write_file = None
            self._write_segment += 1
            size = 0
        if self._write_file is None:
            self._write_file = open(self._path(self._write_segment), "ab")
            self._sizes[self._write_segment] = size
        self._write_file.write(data)
        self._write_file.flush()
        os.fsync(self._write_file.fileno())
        self._sizes[self._write_segment] = size + len(data)

    # ------------------------------------------------------------------ sender side

    @property
    def cursor(self) -> tuple[int, int]:
        return self._read_segment, self._read_offset

    def read_batch(self, max_records: int) -> SpoolBatch:
        """The next records after the cursor, in order (never more than one segment's)."""
        with self._lock:
            segment, offset = self._read_segment, self._read_offset
            records: list[SpoolRecord] = []
            while True:
                if segment in self._sizes:
                    for line, end in self._lines_from(segment, offset):
                        offset = end
                        if line is None:
                            self.torn_lines += 1
                            continue
                        try:
                            records.append(_decoder.decode(line))
                        except msgspec.DecodeError:  # a damaged line: skipped, counted
                            self.torn_lines += 1
                            continue
                        if len(records) >= max_records:
                            break
                    if records or segment == self._write_segment:
                        break
                later = sorted(n for n in self._sizes if n > segment)
                if not later:
                    break
                segment, offset = later[0], 0
            return SpoolBatch(records=records, end_segment=segment, end_offset=offset)

    def commit(self, batch: SpoolBatch) -> None:
        """The cluster has every record of `batch`: move the cursor past it, delete the
        segments wholly behind it."""
        with self._lock:
            self._read_segment, self._read_offset = batch.end_segment, batch.end_offset
            self._save_cursor()
            self._pending = max(0, self._pending - len(batch.records))
            for n in [n for n in self._sizes if n < self._read_segment]:
                self._path(n).unlink(missing_ok=True)
                del self._sizes[n]
            self._oldest = self._peek_oldest() if self._pending else None
            self._pending_bytes = self.pending_bytes()
            if self._pending_bytes < self.max_bytes // 2:
                self._full_logged = False

    def stats(self, now: float | None = None) -> SpoolStats:
        """Counters as last updated (no lock, no file access: safe to call on the event loop)."""
        now = time.time() if now is None else now
        oldest = self._oldest
        return SpoolStats(
            pending_records=self._pending,
            pending_bytes=self._pending_bytes,
            oldest_age_s=round(now - oldest, 3) if oldest is not None else None,
            segments=len(self._sizes),
            dropped_full=self.dropped_full,
            torn_lines=self.torn_lines,
            full=self._full_logged,
        )

    def close(self) -> None:
        with self._lock:
            if self._write_file is not None:
                self._write_file.close()
                self._write_file = None
            if not self._lock_file.closed:
                self._lock_file.close()  # releases the flock
