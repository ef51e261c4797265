"""Recording as the CallArchive sees it: `[call_data.recording]` (off by default, the folder
under paths.output_dir), the recording's path and duration from the CallRecord into the call
document the local log writes, and the retention sweep run at start off the event loop."""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest

from tests.calldata.call_records import demo_call, demo_media
from theo_ray.actors.call_archive import CallArchive
from theo_ray.calldata.settings import CallDataSettings, RecordingSettings
from theo_ray.config import load_config
from theo_ray.errors import ConfigError


def test_recording_is_off_by_default_and_configurable_from_the_environment(tmp_path):
    assert not CallDataSettings().recording.enabled
    assert CallArchive(CallDataSettings(), str(tmp_path)).recording is None
    config = load_config(None, environ={
        "THEO__CALL_DATA__RECORDING__ENABLED": "true", "THEO__CALL_DATA__RECORDING__RETENTION_DAYS": "7",
    })
    assert config.call_data.recording.enabled and config.call_data.recording.retention_days == 7
    with pytest.raises(ConfigError, match="retention_days"):
        RecordingSettings(retention_days=0)


async def test_the_recording_path_and_duration_reach_the_call_document_and_old_recordings_are_swept(tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    old = folder / "20250101T000000.000_old.wav"
    old.write_bytes(b"\0" * 64)
    os.utime(old, (time.time() - 40 * 86400, time.time() - 40 * 86400))
    archive = CallArchive(CallDataSettings(recording=RecordingSettings(enabled=True, retention_days=30)), str(tmp_path))
    assert archive.recording is not None and archive.recording.directory == str(folder)
    await archive.start()
    record = demo_call()
    record.recording_path, record.recording_ms = str(folder / "20260101T000000.000_sess-demo-0001.wav"), 39980.0
    archive.archive(record, demo_media())
    unrecorded = demo_call("sess-demo-0002")
    archive.archive(unrecorded, None)
    deadline = time.monotonic() + 10
    while old.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await archive.close()
    assert not old.exists()  # the sweep at start, in a worker thread
    lines = (tmp_path / "call-data" / "calls.jsonl").read_text().splitlines()
    calls = {d["session_id"]: d for d in map(json.loads, lines) if d["kind"] == "call"}
    assert calls["sess-demo-0001"]["recording_path"] == record.recording_path
    assert calls["sess-demo-0001"]["recording_duration_ms"] == 39980.0
    assert calls["sess-demo-0002"]["recording_path"] == "" and calls["sess-demo-0002"]["recording_duration_ms"] is None

