"""A CallActor's recording of its call: started with the media, finished at close.

Owns the two moments the CallActor needs: `start_recording` attaches a CallRecorder
(media/call_recorder.py) to the call's RtpSession when `[call_data.recording]` is on, and
`finish_recording` closes it (the writer thread drains off the event loop) and writes the
file's path and duration into the CallRecord, the call document's source. A recording that
cannot be written is logged and counted in the record's errors; the call never fails for it.
"""

from __future__ import annotations

import logging
import time

from theo_ray.calldata.settings import RecordingSettings
from theo_ray.conversation.records import CallRecord
from theo_ray.media.call_recorder import CallRecorder, recording_path
from theo_ray.media.rtp_session import RtpSession

log = logging.getLogger("theo.call")


def start_recording(rtp: RtpSession, settings: RecordingSettings | None, session_id: str) -> CallRecorder | None:
    """Record the call from now on, or None (off, or the recorder could not start)."""
    if settings is None or not settings.enabled or rtp.codec is None:
        return None
    try:
        recorder = CallRecorder(
            recording_path(settings.directory, session_id, time.time()), rtp.codec.sample_rate, rtp.ptime_ms,
            chunk_s=settings.chunk_s, queue_chunks=settings.queue_chunks,
        )
    except Exception:  # noqa: BLE001 - e.g. no thread to spare: the call goes on unrecorded
        log.exception("call %s: the recording did not start", session_id)
        return None
    rtp.set_recorder(recorder)
    return recorder


async def finish_recording(recorder: CallRecorder | None, rtp: RtpSession | None, record: CallRecord) -> None:
    """Close the file (after the media stopped) and note it in `record`."""
    if recorder is None:
        return
    if rtp is not None:
        rtp.set_recorder(None)
    try:
        result = await recorder.close()
    except Exception as exc:  # noqa: BLE001 - never fails the close of the call
        log.exception("call %s: the recording did not close", record.session_id)
        record.errors.append(f"recording: {type(exc).__name__}: {exc}")
        return
    if result.error:
        record.errors.append(f"recording: {result.error}")
    elif result.chunks_dropped or result.caller_frames_dropped:
        log.warning("call %s: recording %s has gaps (%d chunks, %d caller frames dropped)", record.session_id,
                    result.path, result.chunks_dropped, result.caller_frames_dropped)
    if result.duration_ms > 0:
        record.recording_path, record.recording_ms = result.path, result.duration_ms
