"""The call-data sinks `[call_data]` asks for, and a log line saying where call data goes.

Apart from `sink.py` so that the sink contract imports none of its implementations (the
JSON-lines log and the Elasticsearch sink import the contract)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from theo_ray.calldata.es_sink import ElasticsearchSink
from theo_ray.calldata.jsonl_log import JsonlCallLog
from theo_ray.calldata.settings import CallDataSettings, jsonl_dir, spool_dir
from theo_ray.calldata.sink import CallDataSink, CallDataSinks


def open_call_data_sinks(settings: CallDataSettings, output_dir: str,
                         environ: Mapping[str, str] | None = None) -> CallDataSinks:
    """The sinks `[call_data]` asks for (not started: `await sinks.start()`)."""
    sinks: list[CallDataSink] = []
    if settings.jsonl.enabled:
        sinks.append(JsonlCallLog(settings.jsonl, jsonl_dir(settings, output_dir)))
    if settings.elasticsearch.url:
        sinks.append(ElasticsearchSink(settings.elasticsearch, spool_dir(settings, output_dir), environ=environ))
    return CallDataSinks(sinks)


def describe(settings: CallDataSettings, output_dir: str) -> str:
    """One line for the log: where call data goes (no secrets)."""
    where = []
    if settings.jsonl.enabled:
        where.append(f"log {Path(jsonl_dir(settings, output_dir)) / settings.jsonl.file_name}")
    if settings.elasticsearch.url:
        es = settings.elasticsearch
        where.append(f"Elasticsearch {es.url} ({es.turns_alias}, {es.calls_alias}; spool {spool_dir(settings, output_dir)})")
    return "call data -> " + (", ".join(where) or "nowhere (call_data.jsonl.enabled = false, no elasticsearch.url)")
