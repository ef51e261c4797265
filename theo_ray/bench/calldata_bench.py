"""`theo bench calldata`: how fast call documents reach the search cluster, and what the
call path pays for it.

Builds N realistic calls (Theo's own CallRecord/TurnRecord, pt-BR turns) into documents,
submits them to the Elasticsearch sink (disk spool included) and to the JSON-lines log as
a call supervisor would, and measures: the time each `submit()` takes to return (the
added latency on the call path), the event loop's largest stall while the sinks work
(other calls' coroutines share that loop), and the throughput (documents/s from the first
submit until the cluster holds them all, counted on the cluster). Without `--url` it
starts osmem-server (the test extra) on 127.0.0.1 and stops it at the end.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import tempfile
import time
from pathlib import Path

import msgspec

from theo_ray.calldata.build import build_call_documents
from theo_ray.calldata.documents import CallDocuments
from theo_ray.calldata.es_client import make_client
from theo_ray.calldata.es_sink import ElasticsearchSink
from theo_ray.calldata.jsonl_log import JsonlCallLog
from theo_ray.calldata.redaction import Redactor
from theo_ray.calldata.settings import CallDataSettings, ElasticsearchSettings, IlmSettings, JsonlLogSettings
from theo_ray.conversation.records import BargeInRecord, CallRecord, TurnRecord
from theo_ray.errors import TheoError

_PHRASES = [
    ("Oi, boa tarde. Eu quero saber o valor da minha fatura.", "A fatura de janeiro é 89 reais e 90 centavos."),
    ("Meu CPF é 123.456.789-09.", "Obrigado. Encontrei o seu cadastro, um instante."),
    ("Eu queria mudar o meu plano de internet.", "Claro. Temos planos de 300 e de 500 megas; qual prefere?"),
    ("Tá bom, muito obrigado. Tchau.", "Eu que agradeço. Tchau!"),
]


class SinkFigures(msgspec.Struct):
    sink: str
    documents: int
    seconds: float
    documents_per_s: float
    submit_us_p50: float
    submit_us_p99: float
    submit_us_max: float
    loop_stall_ms_max: float  # the longest the event loop was late on a 1 ms timer meanwhile


class CallDataBenchReport(msgspec.Struct):
    cluster: str
    calls: int
    turns_per_call: int
    # The same 1 ms timer with no sink working, for 1 s: what this machine's load alone costs.
    idle_loop_stall_ms_max: float
    figures: list[SinkFigures]
    counted_on_cluster: tuple[int, int]  # (turn documents, call documents)


def synthetic_record(n: int, turns: int) -> CallRecord:
    record = CallRecord(session_id=f"bench-{n:06d}", caller_id="+551130000000", started_at=100.0,
                        trace_id=f"{n:032x}", greeting_text="Olá, aqui é o Theo da Conecta Telecom. Como posso te ajudar?")
    at = 103.0
    for i in range(1, turns + 1):
        caller, agent = _PHRASES[(i - 1) % len(_PHRASES)]
        turn = TurnRecord(index=i, caller_text=caller, agent_text=agent, endpoint_rule="base", endpoint_reason="silence")
        for k, name in enumerate(("speech_end_at", "end_of_turn_at", "stt_final_at", "llm_first_token_at",
                                  "llm_first_sentence_at", "tts_first_chunk_at", "first_rtp_at", "drained_at")):
            setattr(turn, name, at + 0.4 * k)
        record.turns.append(turn)
        at += 8.0
    record.barge_ins.append(BargeInRecord(onset_at=105.0, paused_at=105.02, verdict="backchannel", decided_at=105.3))
    record.ended_at = at
    record.end_reason = "caller_hangup"
    return record


def make_documents(calls: int, turns: int) -> list[CallDocuments]:
    redactor = Redactor.from_settings(CallDataSettings().redaction)
    now = time.time()
    return [build_call_documents(synthetic_record(n, turns), ended_wall_time=now, redactor=redactor) for n in range(calls)]


async def _loop_stall_probe(stop: asyncio.Event, stalls: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t0 = loop.time()
        await asyncio.sleep(0.001)
        stalls.append((loop.time() - t0 - 0.001) * 1000.0)


async def _measure(sink, documents: list[CallDocuments], settle) -> SinkFigures:
    await sink.start()
    stop, stalls = asyncio.Event(), []
    probe = asyncio.create_task(_loop_stall_probe(stop, stalls))
    submit_ns = []
    t0 = time.perf_counter()
    for i, docs in enumerate(documents):
        s = time.perf_counter_ns()
        sink.submit(docs)
        submit_ns.append(time.perf_counter_ns() - s)
        if i % 50 == 49:
            await asyncio.sleep(0)  # calls end one after another, not all in one loop iteration
    if not await sink.flush(600.0):
        raise TheoError(f"{sink.name}: documents not delivered within 600 s: {sink.stats()}")
    await settle()
    seconds = time.perf_counter() - t0
    stop.set()
    await probe
    await sink.close()
    us = sorted(n / 1000.0 for n in submit_ns)
    count = sum(1 + len(d.turns) for d in documents)
    return SinkFigures(
        sink=sink.name, documents=count, seconds=round(seconds, 3), documents_per_s=round(count / seconds, 1),
        submit_us_p50=round(statistics.median(us), 2), submit_us_p99=round(us[int(0.99 * (len(us) - 1))], 2),
        submit_us_max=round(us[-1], 2), loop_stall_ms_max=round(max(stalls, default=0.0), 2),
    )


async def idle_loop_stall_ms(seconds: float = 1.0) -> float:
    stop, stalls = asyncio.Event(), []
    probe = asyncio.create_task(_loop_stall_probe(stop, stalls))
    await asyncio.sleep(seconds)
    stop.set()
    await probe
    return round(max(stalls, default=0.0), 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def run_calldata_bench(calls: int, turns: int, url: str = "", server_mode: str = "stack",
                             bulk_max_docs: int = 500, progress=print) -> CallDataBenchReport:
    server = None
    if not url:
        try:
            from osmem_server import OsmemServer
        except ImportError:
            raise TheoError("no --url and osmem-server is not installed (pip install 'theo[test]')") from None
        server = OsmemServer.start(addr=f"127.0.0.1:{_free_port()}", japanese=False)
        url, server_mode = server.url, "serverless"
        progress(f"osmem-server {server.version} started at {url}")
    suffix = time.strftime("%Y%m%d%H%M%S")
    settings = ElasticsearchSettings(
        url=url, server_mode=server_mode, turns_alias=f"theo-bench-{suffix}-turns", calls_alias=f"theo-bench-{suffix}-calls",
        number_of_replicas=0, bulk_max_docs=bulk_max_docs, queue_max_calls=max(1000, calls),
        ilm=IlmSettings(enabled=False),
    )
    documents = make_documents(calls, turns)
    progress(f"{calls} calls built ({sum(1 + len(d.turns) for d in documents)} documents)")
    idle = await idle_loop_stall_ms()
    client = make_client(settings)
    try:
        with tempfile.TemporaryDirectory(prefix="theo-bench-calldata-") as tmp:
            def refresh():
                return asyncio.to_thread(client.indices.refresh, index=f"{settings.turns_alias},{settings.calls_alias}")

            async def nothing():
                return None

            es = await _measure(ElasticsearchSink(settings, Path(tmp) / "spool", client=make_client(settings)),
                                documents, refresh)
            progress(f"elasticsearch: {es.documents_per_s:.0f} documents/s")
            log = await _measure(JsonlCallLog(JsonlLogSettings(), Path(tmp) / "log"), documents, nothing)
            counted = (client.count(index=settings.turns_alias)["count"], client.count(index=settings.calls_alias)["count"])
        if server is None:  # a cluster of the user's: leave nothing behind
            for alias in (settings.turns_alias, settings.calls_alias):
                client.options(ignore_status=404).indices.delete(index=f"{alias}-*")
                client.options(ignore_status=404).indices.delete_index_template(name=alias)
    finally:
        client.close()
        if server is not None:
            server.close()
            if server.process.stdout is not None:
                server.process.stdout.close()  # OsmemServer.close() leaves its reader's pipe open
    return CallDataBenchReport(cluster=url if server is None else "osmem-server", calls=calls, turns_per_call=turns,
                               idle_loop_stall_ms_max=idle, figures=[es, log], counted_on_cluster=counted)
