"""The Elasticsearch sink: call documents to the turns and calls write aliases, through
the disk spool, with nothing lost while the cluster is down and nothing written twice.

Owns the two background tasks of the sink. The writer takes submitted calls from the
bounded inbox and appends their documents to the `DiskSpool` (turns, then the call
summary). The sender reads the spool from its cursor, sends each batch with the client's
bulk helper as `create` operations with deterministic ids (`<session>:turn:<n>`,
`<session>:call`), and commits the cursor only once every document of the batch is in
the cluster: created, already there (409, a replay after a partial bulk) or refused for
good (a mapping error: set aside in `rejected.jsonl`, counted). A transport failure or a
429/5xx leaves the batch in the spool and the sender backs off (doubling from
`retry_backoff_s` to `retry_backoff_max_s`), then replays it in order. Blocking client calls run in
worker threads; the event loop is never blocked and `submit()` never waits.

Setup (`es_setup.install`) runs at `start()`: a refusal raises `CallDataSetupError` there;
an unreachable cluster does not stop the start (documents spool) and the sender runs the
setup before its first send.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import msgspec

from theo_ray.calldata import es_setup
from theo_ray.calldata.documents import CallDocuments
from theo_ray.calldata.es_client import make_client
from theo_ray.calldata.settings import ElasticsearchSettings
from theo_ray.calldata.sink import Inbox, SinkStats, wait_until
from theo_ray.calldata.spool import DiskSpool, SpoolBatch, SpoolRecord
from theo_ray.errors import CallDataSetupError

log = logging.getLogger("theo.calldata")
_encoder = msgspec.json.Encoder()


class BatchNotDelivered(Exception):
    """Some documents of a batch are neither in the cluster nor refused for good."""


def spool_records(documents: CallDocuments, now: float) -> list[SpoolRecord]:
    records = [SpoolRecord("turns", t.doc_id, msgspec.Raw(_encoder.encode(t)), now) for t in documents.turns]
    records.append(SpoolRecord("calls", documents.call.doc_id, msgspec.Raw(_encoder.encode(documents.call)), now))
    return records


class ElasticsearchSink:
    name = "elasticsearch"

    def __init__(self, settings: ElasticsearchSettings, spool_folder: Path, *, client=None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.spool_folder = Path(spool_folder)
        self._client = client
        self._environ = environ
        self._inbox = Inbox(self.name, settings.queue_max_calls)
        self.spool: DiskSpool | None = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._ready = False
        self._in_hand = 0  # documents taken from the inbox, not yet in the spool
        self._created = self._duplicates = self._rejected = 0
        self._last_error = ""
        self.setup_log: list[str] = []

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.spool = await asyncio.to_thread(DiskSpool, self.spool_folder, self.settings.spool_max_bytes,
                                             self.settings.spool_segment_bytes)
        if self._client is None:
            self._client = make_client(self.settings, self._environ)
        try:
            await self._setup()
        except es_setup.ClusterUnreachable as exc:
            self._last_error = str(exc)
            log.warning("call-data: Elasticsearch %s unreachable at start (%s); documents spool in %s until it answers",
                        self.settings.url, exc, self.spool_folder)
        self._tasks = [asyncio.create_task(self._write_loop(), name="calldata-es-writer"),
                       asyncio.create_task(self._send_loop(), name="calldata-es-sender")]
        if self.spool.stats().pending_records:
            self._wake.set()  # documents left from before a restart: replay them

    async def _setup(self) -> None:
        self.setup_log = await asyncio.to_thread(es_setup.install, self._client, self.settings)
        self._ready = True
        log.info("call-data: Elasticsearch %s ready: %s", self.settings.url, "; ".join(self.setup_log))

    def submit(self, documents: CallDocuments) -> None:
        self._inbox.put(documents)

    async def flush(self, timeout_s: float = 30.0) -> bool:
        """True once every submitted document is in the cluster (or refused for good)."""
        return await wait_until(
            lambda: self._inbox.queue.empty() and not self._in_hand and self.spool is not None
            and self.spool.stats().pending_records == 0, timeout_s, poll_s=0.01)

    async def close(self) -> None:
        """Everything submitted goes to the spool first (so a restart replays it), then
        the tasks stop and the client closes."""
        await wait_until(lambda: self._inbox.queue.empty() and not self._in_hand, 5.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.spool is not None:
            while not self._inbox.queue.empty():
                self.spool.append(spool_records(self._inbox.queue.get_nowait(), time.time()))
            self.spool.close()
        if self._client is not None:
            await asyncio.to_thread(self._client.close)

    # ------------------------------------------------------------------ background tasks

    async def _write_loop(self) -> None:
        assert self.spool is not None
        while True:
            batch = await self._inbox.take()
            count = sum(1 + len(documents.turns) for documents in batch)
            self._in_hand = count
            try:
                # Encoding and the fsynced append both in the worker thread: the loop stays free.
                await asyncio.to_thread(self._append, batch)
            except OSError as exc:
                self._inbox.dropped_documents += count
                self._last_error = f"spool write failed: {exc}"
                log.error("call-data spool %s: write failed, %d documents lost: %s", self.spool_folder, count, exc)
            finally:
                self._in_hand = 0
            self._wake.set()

    def _append(self, batch: list[CallDocuments]) -> None:
        now = time.time()
        self.spool.append([r for documents in batch for r in spool_records(documents, now)])

    async def _send_loop(self) -> None:
        assert self.spool is not None
        backoff = self.settings.retry_backoff_s
        while True:
            try:
                if not self._ready:
                    await self._setup()
                self._wake.clear()
                batch = await asyncio.to_thread(self.spool.read_batch, self.settings.bulk_max_docs)
                if not batch.records:
                    if (batch.end_segment, batch.end_offset) != self.spool.cursor:
                        await asyncio.to_thread(self.spool.commit, batch)  # skipped damaged lines
                        continue
                    await self._wake.wait()
                    continue
                await asyncio.to_thread(self._send, batch)
                await asyncio.to_thread(self.spool.commit, batch)
                backoff = self.settings.retry_backoff_s
                self._last_error = ""
            except asyncio.CancelledError:
                raise
            except (es_setup.ClusterUnreachable, BatchNotDelivered, CallDataSetupError) as exc:
                self._last_error = str(exc)
                if isinstance(exc, CallDataSetupError):
                    log.error("call-data: %s (documents stay spooled)", exc)
                    backoff = self.settings.retry_backoff_max_s
                else:
                    log.warning("call-data: send failed, retrying in %.1f s: %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.retry_backoff_max_s)
            except Exception as exc:  # noqa: BLE001 - the sender must outlive any bug in one batch
                self._last_error = f"{type(exc).__name__}: {exc}"
                log.exception("call-data: sender error; retrying in %.1f s", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.retry_backoff_max_s)

    def _send(self, batch: SpoolBatch) -> None:
        """One bulk round (worker thread). Raises unless every document is settled."""
        from elasticsearch import ApiError, TransportError, helpers

        aliases = {"turns": self.settings.turns_alias, "calls": self.settings.calls_alias}
        actions = ({"_op_type": "create", "_index": aliases[r.target], "_id": r.doc_id, "_source": bytes(r.source)}
                   for r in batch.records)
        rejected: list[tuple[SpoolRecord, dict]] = []
        unsettled = 0
        created = duplicates = 0
        try:
            results = helpers.streaming_bulk(
                self._client, actions, chunk_size=self.settings.bulk_max_docs, raise_on_error=False,
                raise_on_exception=True, max_retries=self.settings.max_retries,
                initial_backoff=self.settings.retry_backoff_s, max_backoff=self.settings.retry_backoff_max_s,
            )
            by_id = {r.doc_id: r for r in batch.records}
            # Results come in order, except documents retried after a 429 (later): match by _id.
            for ok, item in results:
                result = item.get("create", item)
                record = by_id.get(str(result.get("_id", "")))
                status = int(result.get("status", 0))
                if ok or status == 201:
                    created += 1
                elif status == 409:
                    duplicates += 1
                elif status in es_setup.TRANSIENT_STATUS:
                    unsettled += 1
                elif record is not None:
                    rejected.append((record, result))
                else:
                    unsettled += 1
        except ApiError as exc:
            if es_setup.status_of(exc) in es_setup.TRANSIENT_STATUS:
                raise BatchNotDelivered(es_setup.describe_api_error(exc)) from None
            raise CallDataSetupError("_bulk", es_setup.describe_api_error(exc)) from None
        except TransportError as exc:
            raise es_setup.ClusterUnreachable(f"_bulk: {type(exc).__name__}: {exc.message}") from None
        finally:
            self._created += created
            self._duplicates += duplicates
        if rejected:
            self._set_aside(rejected)
        if unsettled:
            raise BatchNotDelivered(f"{unsettled} of {len(batch.records)} documents not accepted yet (429/5xx)")

    def _set_aside(self, rejected: list[tuple[SpoolRecord, dict]]) -> None:
        """Documents the cluster refuses for good (mapping errors): kept on disk, counted,
        logged; the spool moves on past them."""
        self._rejected += len(rejected)
        with open(self.spool_folder / "rejected.jsonl", "ab") as f:
            for record, result in rejected:
                f.write(_encoder.encode({"target": record.target, "doc_id": record.doc_id,
                                         "error": result.get("error"), "source": record.source}) + b"\n")
        first = rejected[0][1].get("error")
        log.error("call-data: %d documents refused by Elasticsearch (kept in %s): %s",
                  len(rejected), self.spool_folder / "rejected.jsonl", first)

    # ------------------------------------------------------------------ stats

    def stats(self) -> SinkStats:
        spool = self.spool.stats() if self.spool is not None else None
        return SinkStats(
            name=self.name, submitted_calls=self._inbox.submitted, documents_written=self._created,
            duplicates=self._duplicates, rejected=self._rejected,
            dropped=self._inbox.dropped_documents + (spool.dropped_full if spool else 0),
            pending_documents=self._inbox.documents_waiting() + self._in_hand + (spool.pending_records if spool else 0),
            ready=self._ready, last_error=self._last_error, spool=spool,
        )
