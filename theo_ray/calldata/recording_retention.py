"""Retention of call recordings: a sweep over the recordings folder, and its schedule.

Owns deleting recordings (`*.wav` under `call_data.recording.directory`): first every file
older than `retention_days` (by modification time), then the oldest ones until the folder
holds at most `max_total_bytes`. A file written to in the last `ACTIVE_GRACE_S` is a call
still being recorded and is never deleted for size. `sweep_recordings` is plain blocking
file I/O; `RecordingSweeper` runs it in a worker thread at start and every
`sweep_interval_s`, so the event loop that calls it never waits on the disk.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import msgspec

from theo_ray.calldata.settings import RecordingSettings

log = logging.getLogger("theo.recording")
ACTIVE_GRACE_S = 120.0
DAY_S = 86400.0


class SweepResult(msgspec.Struct, frozen=True):
    kept: int = 0
    kept_bytes: int = 0
    deleted_for_age: int = 0
    deleted_for_size: int = 0
    failed: int = 0  # files that could not be read or deleted (logged)


def sweep_recordings(directory: Path, retention_days: float, max_total_bytes: int,
                     now: float | None = None) -> SweepResult:
    """One pass over `directory` (blocking: call it off the event loop)."""
    now = time.time() if now is None else now
    if not directory.is_dir():
        return SweepResult()
    files: list[tuple[float, int, Path]] = []
    failed = aged = sized = 0
    for path in directory.rglob("*.wav"):
        try:
            st = path.stat()
        except OSError:
            failed += 1
            continue
        if now - st.st_mtime > retention_days * DAY_S:
            if _delete(path):
                aged += 1
            else:
                failed += 1
                files.append((st.st_mtime, st.st_size, path))
        else:
            files.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in files)
    if max_total_bytes:
        files.sort()  # oldest first
        kept: list[tuple[float, int, Path]] = []
        for mtime, size, path in files:
            if total > max_total_bytes and now - mtime > ACTIVE_GRACE_S and _delete(path):
                total -= size
                sized += 1
            else:
                kept.append((mtime, size, path))
        files = kept
    return SweepResult(kept=len(files), kept_bytes=total, deleted_for_age=aged, deleted_for_size=sized, failed=failed)


def _delete(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return True
    except OSError as exc:
        log.warning("recording retention: cannot delete %s: %s", path, exc)
        return False
    return True


class RecordingSweeper:
    """The sweep, at start and every `sweep_interval_s`, in a worker thread."""

    def __init__(self, settings: RecordingSettings, directory: Path) -> None:
        self.settings = settings
        self.directory = directory
        self.last: SweepResult | None = None
        self.sweeps = 0
        self._task: asyncio.Task | None = None

    async def sweep_once(self) -> SweepResult:
        s = self.settings
        result = await asyncio.to_thread(sweep_recordings, self.directory, s.retention_days, s.max_total_bytes)
        self.last, self.sweeps = result, self.sweeps + 1
        if result.deleted_for_age or result.deleted_for_size or result.failed:
            log.info("recording retention in %s: %s", self.directory, result)
        return result

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="recording-retention")

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception:  # noqa: BLE001 - a failed sweep is logged; the next one runs anyway
                log.exception("recording retention sweep failed in %s", self.directory)
            await asyncio.sleep(self.settings.sweep_interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
