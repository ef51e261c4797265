"""The disk spool (order, cursor, restart, torn lines, bounded size) and the local JSON-lines
call log (lines per call, rotation by size), on real files."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest

from tests.calldata.call_records import demo_call
from theo_ray.calldata.build import build_call_documents
from theo_ray.calldata.jsonl_log import JsonlCallLog
from theo_ray.calldata.settings import CallDataSettings, JsonlLogSettings
from theo_ray.calldata.configured import open_call_data_sinks
from theo_ray.calldata.sink import CallDataSink
from theo_ray.calldata.spool import DiskSpool, SpoolInUse, SpoolRecord


def _records(n: int, start: int = 0, size: int = 40) -> list[SpoolRecord]:
    return [SpoolRecord("turns", f"doc-{i}", msgspec.Raw(json.dumps({"i": i, "pad": "x" * size}).encode()), 1000.0 + i)
            for i in range(start, start + n)]


def _drain(spool: DiskSpool, batch_size: int = 7) -> list[str]:
    ids = []
    while True:
        batch = spool.read_batch(batch_size)
        if not batch.records and (batch.end_segment, batch.end_offset) == spool.cursor:
            return ids
        ids += [r.doc_id for r in batch.records]
        spool.commit(batch)


def test_records_come_back_in_order_across_segments_and_consumed_segments_are_deleted(tmp_path):
    spool = DiskSpool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    for chunk in range(10):
        assert spool.append(_records(10, start=chunk * 10)) == 10
    assert spool.stats().segments >= 3
    assert spool.stats(now=1010.0).oldest_age_s == 10.0
    assert _drain(spool) == [f"doc-{i}" for i in range(100)]
    stats = spool.stats()
    assert stats.pending_records == 0 and stats.pending_bytes == 0 and stats.oldest_age_s is None
    assert stats.segments <= 1
    spool.close()


def test_a_restart_resumes_at_the_cursor_and_never_appends_to_an_old_segment(tmp_path):
    spool = DiskSpool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 16)
    spool.append(_records(20))
    batch = spool.read_batch(8)
    spool.commit(batch)  # 8 acknowledged
    spool.read_batch(8)  # read but the process died before the cluster answered
    spool.close()
    # A crash mid-write left half a line at the end of the old segment.
    segment = sorted(tmp_path.glob("seg-*.jsonl"))[-1]
    with open(segment, "ab") as f:
        f.write(b'["turns","doc-torn",{"i":')
    again = DiskSpool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 16)
    assert again.stats().pending_records == 12
    again.append(_records(3, start=100))
    assert len(list(tmp_path.glob("seg-*.jsonl"))) == 2  # the new records went to a new segment
    assert _drain(again) == [f"doc-{i}" for i in range(8, 20)] + ["doc-100", "doc-101", "doc-102"]
    assert again.stats().torn_lines == 1
    again.close()


def test_a_full_spool_refuses_new_records_counts_them_and_keeps_the_old(tmp_path, caplog):
    spool = DiskSpool(tmp_path, max_bytes=8192, segment_bytes=4096)
    with caplog.at_level("ERROR", logger="theo.calldata"):
        written = sum(spool.append(_records(1, start=i, size=200)) for i in range(60))
    stats = spool.stats()
    assert written < 60 and stats.dropped_full == 60 - written and stats.full
    assert stats.pending_bytes <= 8192
    assert "spool full" in caplog.text
    assert _drain(spool) == [f"doc-{i}" for i in range(written)]  # the oldest kept, in order
    spool.close()


async def test_the_jsonl_log_writes_turn_lines_then_the_summary_and_rotates_by_size(tmp_path):
    settings = JsonlLogSettings(max_bytes=8 * 1024, keep_files=3)
    log = JsonlCallLog(settings, tmp_path)
    assert isinstance(log, CallDataSink)
    await log.start()
    for n in range(12):
        log.submit(build_call_documents(demo_call(f"sess-{n:03d}"), ended_wall_time=1_767_225_600.0 + n))
    assert await log.flush(10.0)
    await log.close()
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["calls.jsonl", "calls.jsonl.1", "calls.jsonl.2", "calls.jsonl.3"]
    assert all(f.stat().st_size <= 8 * 1024 for f in files)
    # Oldest first: .3, .2, .1, then the current file; nothing older than keep_files survives.
    lines = [json.loads(line) for f in (files[3], files[2], files[1], files[0]) for line in f.read_text().splitlines()]
    assert lines[-1]["kind"] == "call" and lines[-1]["session_id"] == "sess-011"
    assert [d["kind"] for d in lines[-4:]] == ["turn", "turn", "turn", "call"]
    assert [d["turn_index"] for d in lines[-4:-1]] == [1, 2, 3]
    assert log.stats().documents_written == 12 * 4 and log.rotations >= 3
    kept = {d["session_id"] for d in lines}
    assert "sess-000" not in kept  # rotated away


async def test_the_factory_opens_the_log_under_the_output_dir_and_submit_returns_at_once(tmp_path):
    sinks = open_call_data_sinks(CallDataSettings(), str(tmp_path))
    assert [s.name for s in sinks.sinks] == ["jsonl"]
    await sinks.start()
    docs = build_call_documents(demo_call(), ended_wall_time=1_767_225_600.0)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    sinks.submit(docs)
    assert loop.time() - t0 < 0.01  # nothing was written yet: the background task does it
    assert not (tmp_path / "call-data" / "calls.jsonl").read_text()
    assert await sinks.flush(5.0)
    await sinks.close()
    assert len((tmp_path / "call-data" / "calls.jsonl").read_text().splitlines()) == 4


def test_a_second_process_cannot_open_a_spool_in_use(tmp_path):
    import subprocess
    import sys

    spool = DiskSpool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    with pytest.raises(SpoolInUse, match="another process"):
        DiskSpool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    code = ("import sys; from pathlib import Path; from theo_ray.calldata.spool import DiskSpool, SpoolInUse\n"
            "try:\n    DiskSpool(Path(sys.argv[1]), 1 << 20, 4096)\nexcept SpoolInUse:\n    sys.exit(3)\n")
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path)]).returncode == 3
    spool.close()
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path)]).returncode == 0  # released on close
