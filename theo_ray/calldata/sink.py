"""The call-data sink interface, its statistics, and the sinks a config asks for.

Owns the contract every sink keeps: `submit()` is synchronous, O(1) and never raises nor
waits (the call path calls it and goes on; a bounded in-memory inbox hands the documents
to the sink's own background task); `start()`/`close()` bracket the background work;
`flush()` waits until everything submitted has been delivered (shutdown, tests,
benchmarks). `CallDataSinks` fans one submission out to every configured sink, and
`theo_ray.calldata.configured.open_call_data_sinks()` builds them from `[call_data]`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol, runtime_checkable

import msgspec

from theo_ray.calldata.documents import CallDocuments
from theo_ray.calldata.spool import SpoolStats

log = logging.getLogger("theo.calldata")


class SinkStats(msgspec.Struct, kw_only=True):
    name: str
    submitted_calls: int = 0
    documents_written: int = 0  # delivered: a line in the log, a document the cluster created
    duplicates: int = 0  # already in the cluster (a replay after a partial bulk): not written twice
    rejected: int = 0  # refused by the cluster (mapping error ...): kept in rejected.jsonl
    dropped: int = 0  # lost: inbox full (the background task stuck) or spool full
    pending_documents: int = 0  # submitted, not yet delivered
    ready: bool = True  # setup done / file open
    last_error: str = ""
    spool: SpoolStats | None = None


@runtime_checkable
class CallDataSink(Protocol):
    name: str

    async def start(self) -> None:
        """Open files / install the cluster setup, start the background task."""

    def submit(self, documents: CallDocuments) -> None:
        """Hand one call's documents over. Never blocks, never raises."""

    async def flush(self, timeout_s: float = 30.0) -> bool:
        """True once everything submitted so far is delivered (False: timed out)."""

    async def close(self) -> None:
        """Stop the background task; nothing submitted before is lost (it stays spooled)."""

    def stats(self) -> SinkStats:
        ...


class Inbox:
    """A bounded asyncio queue of calls for one sink's background task; overflow is
    counted and logged, never waited on."""

    def __init__(self, name: str, max_calls: int) -> None:
        self.name = name
        self.queue: asyncio.Queue[CallDocuments] = asyncio.Queue(max_calls)
        self.submitted = 0
        self.dropped_documents = 0

    def put(self, documents: CallDocuments) -> None:
        try:
            self.queue.put_nowait(documents)
            self.submitted += 1
        except asyncio.QueueFull:
            self.dropped_documents += 1 + len(documents.turns)
            log.error("call-data sink %s: inbox full (%d calls), call %s dropped",
                      self.name, self.queue.maxsize, documents.call.session_id)

    async def take(self) -> list[CallDocuments]:
        """Wait for one call, then take every call already waiting (in order)."""
        batch = [await self.queue.get()]
        while not self.queue.empty():
            batch.append(self.queue.get_nowait())
        return batch

    def documents_waiting(self) -> int:
        return sum(1 + len(d.turns) for d in list(self.queue._queue))  # type: ignore[attr-defined]


async def wait_until(predicate, timeout_s: float, poll_s: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(poll_s)
    return True


class CallDataSinks:
    """Every configured sink behind one `submit()`; a failing sink never stops another."""

    name = "call-data"

    def __init__(self, sinks: list[CallDataSink]) -> None:
        self.sinks = sinks

    async def start(self) -> None:
        for sink in self.sinks:
            await sink.start()

    def submit(self, documents: CallDocuments) -> None:
        for sink in self.sinks:
            try:
                sink.submit(documents)
            except Exception:  # noqa: BLE001 - a sink's bug must not reach the call path
                log.exception("call-data sink %s refused a submission", sink.name)

    async def flush(self, timeout_s: float = 30.0) -> bool:
        results = await asyncio.gather(*(s.flush(timeout_s) for s in self.sinks))
        return all(results)

    async def close(self) -> None:
        for sink in self.sinks:
            try:
                await sink.close()
            except Exception:  # noqa: BLE001 - close the others anyway
                log.exception("closing call-data sink %s failed", sink.name)

    def stats(self) -> list[SinkStats]:
        return [s.stats() for s in self.sinks]
