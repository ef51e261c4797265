"""The Elasticsearch sink end to end with the official client over real HTTP: osmem-server
always, a real cluster too when THEO_ES_URL is set (see conftest.py).

Template and write aliases installed (twice: idempotent), a realistic call's documents
bulk-indexed and found by session id and by Portuguese full text, the spool filling while
the cluster is stopped and replaying when it is back (documents counted before and after:
nothing lost, nothing twice), a replayed batch not written twice, a refused document set
aside, and, on osmem, a sink started while the cluster is down, and ILM refused.
"""

from __future__ import annotations

import asyncio
import json
import time

import msgspec
import pytest

from tests.calldata.call_records import demo_call, demo_media
from tests.calldata.conftest import es_settings
from theo_ray.calldata import es_setup
from theo_ray.calldata.build import build_call_documents
from theo_ray.calldata.es_client import make_client
from theo_ray.calldata.es_sink import ElasticsearchSink, spool_records
from theo_ray.calldata.redaction import Redactor
from theo_ray.calldata.settings import RedactionSettings
from theo_ray.calldata.spool import DiskSpool, SpoolRecord
from theo_ray.errors import CallDataSetupError

ENDED = 1_767_225_600.0


def _docs(n: int, prefix: str = "sess"):
    redactor = Redactor.from_settings(RedactionSettings())
    return [build_call_documents(demo_call(f"{prefix}-{i:04d}"), ended_wall_time=ENDED + i, media=demo_media(),
                                 redactor=redactor) for i in range(n)]


def _counts(client, settings) -> tuple[int, int]:
    client.indices.refresh(index=f"{settings.turns_alias},{settings.calls_alias}")
    return (client.count(index=settings.turns_alias)["count"], client.count(index=settings.calls_alias)["count"])


async def _until(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _sink(settings, folder) -> ElasticsearchSink:
    sink = ElasticsearchSink(settings, folder)
    await sink.start()
    return sink


def test_setup_installs_strict_templates_and_write_aliases_and_running_it_again_changes_nothing(cluster, cleanup):
    settings = es_settings(cluster)
    cleanup(cluster, settings)
    client = make_client(settings)
    first = es_setup.install(client, settings)
    assert f"write alias {settings.turns_alias} -> {settings.turns_alias}-000001" in first
    again = es_setup.install(client, settings)
    assert f"write alias {settings.turns_alias} exists" in again and f"write alias {settings.calls_alias} exists" in again
    template = client.indices.get_index_template(name=settings.turns_alias)["index_templates"][0]["index_template"]
    assert template["index_patterns"] == [f"{settings.turns_alias}-*"]
    mapping = client.indices.get_mapping(index=settings.turns_alias)[f"{settings.turns_alias}-000001"]["mappings"]
    assert mapping["dynamic"] == "strict"
    assert mapping["properties"]["caller_text"] == {"type": "text", "analyzer": "portuguese"}
    assert mapping["properties"]["session_id"]["type"] == "keyword"
    aliases = client.indices.get_alias(name=settings.calls_alias)
    assert aliases == {f"{settings.calls_alias}-000001": {"aliases": {settings.calls_alias: {"is_write_index": True}}}}
    if cluster.ilm:
        policy = client.ilm.get_lifecycle(name=settings.ilm.policy_name)[settings.ilm.policy_name]["policy"]
        assert policy["phases"]["hot"]["actions"]["rollover"]["max_age"] == "7d"
    client.close()


async def test_a_real_calls_documents_are_bulk_indexed_and_found_by_session_id(cluster, cleanup, tmp_path):
    settings = es_settings(cluster)
    cleanup(cluster, settings)
    sink = await _sink(settings, tmp_path / "spool")
    for docs in _docs(3):
        sink.submit(docs)
    assert await sink.flush(15.0), sink.stats()
    client = make_client(settings)
    assert _counts(client, settings) == (9, 3)
    hits = client.search(index=settings.turns_alias, query={"term": {"session_id": "sess-0001"}},
                         sort=[{"turn_index": "asc"}], size=10)["hits"]["hits"]
    assert [h["_id"] for h in hits] == [f"sess-0001:turn:{i}" for i in (1, 2, 3)]
    assert hits[0]["_source"]["agent_text_heard"].endswith("89 reais—")
    assert hits[1]["_source"]["caller_text"] == "Meu CPF é [cpf], pode mandar no [phone]."  # redacted
    call = client.get(index=settings.calls_alias, id="sess-0001:call")["_source"]
    assert call["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and call["media"]["mos"] == 4.31
    # Portuguese analysis: "faturas" finds the turn that said "fatura".
    found = client.search(index=settings.turns_alias, query={"bool": {
        "must": [{"match": {"caller_text": "faturas"}}], "filter": [{"term": {"session_id": "sess-0002"}}]}})
    assert [h["_id"] for h in found["hits"]["hits"]] == ["sess-0002:turn:1"]
    slow = client.count(index=settings.turns_alias, query={"range": {"timings.response_ms": {"gte": 3000}}})["count"]
    assert slow == 9
    stats = sink.stats()
    assert (stats.documents_written, stats.duplicates, stats.rejected, stats.pending_documents) == (12, 0, 0, 0)
    await sink.close()
    client.close()


async def test_the_spool_fills_while_the_cluster_is_stopped_and_replays_when_it_is_back(cluster, cleanup, tmp_path):
    settings = es_settings(cluster)
    cleanup(cluster, settings)
    sink = await _sink(settings, tmp_path / "spool")
    client = make_client(settings)
    for docs in _docs(5, "before"):
        sink.submit(docs)
    assert await sink.flush(15.0)
    before = _counts(client, settings)
    assert before == (15, 5)

    cluster.stop()
    submit_s = []
    for docs in _docs(5, "during"):
        t0 = time.perf_counter()
        sink.submit(docs)
        submit_s.append(time.perf_counter() - t0)
    await _until(lambda: sink.stats().spool.pending_records == 20 and sink.stats().last_error != "")
    stats = sink.stats()
    assert stats.pending_documents == 20 and stats.spool.pending_bytes > 0 and stats.spool.oldest_age_s is not None
    assert max(submit_s) < 0.005  # the call path never waited on the stopped cluster
    await asyncio.sleep(0.5)  # a few failed rounds: still nothing lost from the spool
    assert sink.stats().spool.pending_records == 20

    cluster.resume()
    assert await sink.flush(30.0), sink.stats()
    after = _counts(client, settings)
    assert after == (before[0] + 15, before[1] + 5)  # nothing lost, nothing twice
    sessions = client.search(index=settings.calls_alias, size=0,
                             aggs={"s": {"terms": {"field": "session_id", "size": 100}}})["aggregations"]["s"]["buckets"]
    assert sorted(b["key"] for b in sessions) == sorted([f"before-{i:04d}" for i in range(5)] + [f"during-{i:04d}" for i in range(5)])
    assert all(b["doc_count"] == 1 for b in sessions)
    assert sink.stats().spool.pending_records == 0 and sink.stats().spool.oldest_age_s is None
    await sink.close()
    client.close()


async def test_a_batch_replayed_after_a_crash_is_not_written_twice(cluster, cleanup, tmp_path):
    settings = es_settings(cluster)
    cleanup(cluster, settings)
    first, second = _docs(2, "replay")
    sink = await _sink(settings, tmp_path / "a")
    sink.submit(first)
    assert await sink.flush(15.0)
    await sink.close()
    # The process died after the cluster took `first` but before the cursor moved: on
    # restart the spool still holds it, followed by a new call.
    spool = DiskSpool(tmp_path / "b", 1 << 20, 1 << 16)
    spool.append(spool_records(first, time.time()) + spool_records(second, time.time()))
    spool.close()
    sink = await _sink(settings, tmp_path / "b")
    assert await sink.flush(15.0)
    stats = sink.stats()
    assert (stats.documents_written, stats.duplicates) == (4, 4)
    client = make_client(settings)
    assert _counts(client, settings) == (6, 2)
    await sink.close()
    client.close()


async def test_a_document_the_mapping_refuses_is_set_aside_and_the_rest_goes_on(cluster, cleanup, tmp_path):
    settings = es_settings(cluster)
    cleanup(cluster, settings)
    good_a, good_b = _docs(2, "ok")
    bogus = SpoolRecord("turns", "bogus:turn:1", msgspec.Raw(json.dumps({"session_id": "bogus", "not_in_mapping": 1}).encode()), time.time())
    spool = DiskSpool(tmp_path / "s", 1 << 20, 1 << 16)
    spool.append(spool_records(good_a, time.time()) + [bogus] + spool_records(good_b, time.time()))
    spool.close()
    sink = await _sink(settings, tmp_path / "s")
    assert await sink.flush(15.0)
    assert sink.stats().rejected == 1 and sink.stats().documents_written == 8
    kept = [json.loads(line) for line in (tmp_path / "s" / "rejected.jsonl").read_text().splitlines()]
    assert [k["doc_id"] for k in kept] == ["bogus:turn:1"] and "strict" in json.dumps(kept[0]["error"])
    client = make_client(settings)
    assert _counts(client, settings) == (6, 2)
    await sink.close()
    client.close()


async def test_a_sink_started_while_the_cluster_is_down_sets_it_up_once_it_is_back(osmem, tmp_path):
    osmem.kill()
    settings = es_settings(osmem)
    sink = await _sink(settings, tmp_path / "spool")  # no error: the documents spool
    for docs in _docs(3, "early"):
        sink.submit(docs)
    await _until(lambda: sink.stats().spool.pending_records == 12)
    assert not sink.stats().ready and "Connection" in sink.stats().last_error
    osmem.start()  # the same port, empty
    assert await sink.flush(15.0), sink.stats()
    assert sink.stats().ready
    client = make_client(settings)
    assert _counts(client, settings) == (9, 3)
    assert client.indices.exists_alias(name=settings.turns_alias)
    await sink.close()
    client.close()


async def test_ilm_on_a_cluster_without_ilm_is_a_clear_error_at_start(osmem, tmp_path):
    settings = es_settings(osmem, ilm=es_settings(osmem).ilm.__class__(enabled=True))
    sink = ElasticsearchSink(settings, tmp_path / "spool")
    with pytest.raises(CallDataSetupError) as failure:
        await sink.start()
    assert failure.value.step == "PUT _ilm/policy/theo-call-data"
    assert "400" in failure.value.reason and "_ilm/policy" in failure.value.reason
    await sink.close()
