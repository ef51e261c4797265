"""CallArchive: where the CallSupervisor sends a finished call's record — the call-data
sinks of `[call_data]` (the JSON-lines call log by default, Elasticsearch when a URL is
set), as one call document and one document per turn.

A call never waits for it: `archive()` hands the documents to the sinks' inbox and
returns; the sinks write (and spool while Elasticsearch is away) in the background.
With `[call_data.recording]` on it also names the folder the CallActors record into
(`recording`, handed to each CallActor) and sweeps it for retention.
"""

from __future__ import annotations

import logging
import socket
import time

import msgspec

from theo_ray.calldata.build import build_call_documents
from theo_ray.calldata.recording_retention import RecordingSweeper
from theo_ray.calldata.redaction import Redactor
from theo_ray.calldata.settings import CallDataSettings, RecordingSettings, recording_dir
from theo_ray.calldata.configured import describe, open_call_data_sinks
from theo_ray.conversation.records import CallRecord
from theo_ray.media.rtp_session import MediaStats

log = logging.getLogger("theo.supervisor")


class CallArchive:
    def __init__(self, settings: CallDataSettings | None, output_dir: str) -> None:
        self._settings = settings
        self._output_dir = output_dir
        self._sinks = open_call_data_sinks(settings, output_dir) if settings is not None else None
        self._redactor = Redactor.from_settings(settings.redaction) if settings is not None else None
        self._started = False
        self.archived = 0
        # What each CallActor records with (the folder resolved), None while recording is off.
        self.recording: RecordingSettings | None = None
        self._sweeper: RecordingSweeper | None = None
        if settings is not None and settings.recording.enabled:
            folder = recording_dir(settings, output_dir)
            self.recording = msgspec.structs.replace(settings.recording, directory=str(folder))
            self._sweeper = RecordingSweeper(self.recording, folder)

    async def start(self) -> None:
        """Open the sinks once (Elasticsearch: templates and ILM installed, or a typed
        CallDataSetupError when the cluster refuses them)."""
        if self._sinks is None or self._started:
            return
        await self._sinks.start()
        self._started = True
        log.info(describe(self._settings, self._output_dir))
        if self._sweeper is not None:
            self._sweeper.start()  # its first sweep now, in a worker thread
            log.info("calls recorded to %s", self._sweeper.directory)

    def archive(self, record: CallRecord, media: MediaStats | None, ended_wall_time: float | None = None) -> None:
        if self._sinks is None:
            return
        try:
            documents = build_call_documents(
                record, ended_wall_time=ended_wall_time or time.time(), media=media, redactor=self._redactor,
                recording_path=record.recording_path, recording_duration_ms=record.recording_ms,
                node=socket.gethostname(),
            )
        except Exception:  # noqa: BLE001 - a record the builder cannot read is logged, never fatal
            log.exception("call %s: call data not built", record.session_id)
            return
        self._sinks.submit(documents)
        self.archived += 1

    async def close(self, flush_s: float = 5.0) -> None:
        if self._sweeper is not None:
            await self._sweeper.stop()
        if self._sinks is None or not self._started:
            return
        await self._sinks.flush(flush_s)
        await self._sinks.close()
        self._started = False
