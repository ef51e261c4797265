"""The request bodies Theo sends to set up Elasticsearch: index templates with explicit
mappings, the ILM policy and the first (bootstrap) index of each write alias.

Owns the mapping of every document field (keyword vs text with the built-in `portuguese`
analyzer, dates, numbers; `dynamic: strict`, so a field the mapping does not know is
refused instead of mapped by guess) and the policy's shape. Pure functions of the
settings: the shapes are those of Elasticsearch's documented APIs (PUT _index_template,
PUT _ilm/policy, PUT <index> with aliases), checked by tests/calldata/test_es_requests.py.
"""

from __future__ import annotations

from typing import Any

from theo_ray.calldata.documents import SCHEMA_VERSION
from theo_ray.calldata.settings import ElasticsearchSettings

KEYWORD = {"type": "keyword", "ignore_above": 1024}
TEXT_PT = {"type": "text", "analyzer": "portuguese"}
# Free text that is also filtered on exactly (error messages, end reasons with detail).
TEXT_PT_KEYWORD = {"type": "text", "analyzer": "portuguese", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
DATE = {"type": "date"}
FLOAT = {"type": "float"}
INT = {"type": "integer"}
LONG = {"type": "long"}
BOOL = {"type": "boolean"}


def _object(properties: dict[str, Any], nested: bool = False) -> dict[str, Any]:
    return {"type": "nested" if nested else "object", "dynamic": "strict", "properties": properties}


STAGE_TIMINGS = _object({
    name: FLOAT for name in (
        "endpointing_ms", "stt_ms", "stt_compute_ms", "llm_first_token_ms", "llm_first_sentence_ms",
        "tts_first_chunk_ms", "first_rtp_ms", "response_ms", "filler_ms",
    )
})

TURN_PROPERTIES: dict[str, Any] = {
    "doc_id": KEYWORD,
    "session_id": KEYWORD,
    "trace_id": KEYWORD,
    "turn_index": INT,
    "@timestamp": DATE,
    "caller_id": KEYWORD,
    "caller_text": TEXT_PT,
    "agent_text_heard": TEXT_PT,
    "agent_text_generated": TEXT_PT,
    "interrupted": BOOL,
    "endpoint_rule": KEYWORD,
    "endpoint_reason": KEYWORD,
    "barge_in_verdict": KEYWORD,
    "barge_ins": _object({
        "verdict": KEYWORD, "reaction_ms": FLOAT, "decided_ms": FLOAT, "heard": TEXT_PT, "caller_text": TEXT_PT,
    }, nested=True),
    "timings": STAGE_TIMINGS,
    "filler_text": TEXT_PT,
    "reply_tokens": INT,
    "llm_model": KEYWORD,
    "reply_loop": TEXT_PT,
    "tool_calls": _object({
        "name": KEYWORD, "arguments_json": {"type": "text"}, "ok": BOOL, "detail": TEXT_PT, "wait_ms": FLOAT,
    }, nested=True),
    "error": TEXT_PT_KEYWORD,
    "schema_version": INT,
}

CALL_PROPERTIES: dict[str, Any] = {
    "doc_id": KEYWORD,
    "session_id": KEYWORD,
    "trace_id": KEYWORD,
    "@timestamp": DATE,
    "started_at": DATE,
    "ended_at": DATE,
    "duration_ms": FLOAT,
    "caller_id": KEYWORD,
    "outcome": KEYWORD,
    "end_reason": KEYWORD,
    "transferred_to": KEYWORD,
    "transfer_reason": TEXT_PT_KEYWORD,
    "greeting_text": TEXT_PT,
    "transcript": TEXT_PT,
    "metrics": _object({
        "turns": INT, "barge_ins": INT, "barge_in_rate": FLOAT, "backchannels": INT, "backchannels_played": INT,
        "fillers_played": INT, "silence_prompts": INT, "early_pauses": INT, "model_timeouts": INT, "llm_fallbacks": INT,
        "reply_loops": INT, "tool_calls": INT, "errors": INT,
        "response_ms_p50": FLOAT, "response_ms_p95": FLOAT, "response_ms_max": FLOAT,
        "slow_responses": INT, "repeat_requests": INT, "repeat_rate": FLOAT, "readbacks": INT,
        "task_completed": BOOL, "turns_to_resolution": INT,
    }),
    "model_timeouts": _object({"stage": KEYWORD, "count": INT}),
    "errors": TEXT_PT_KEYWORD,
    "media": _object({
        "codec": KEYWORD, "mos": FLOAT, "jitter_ms": FLOAT, "loss_fraction": FLOAT, "packets_in": LONG,
        "packets_out": LONG, "lost": LONG, "concealed_frames": LONG, "rtt_ms": FLOAT,
        "remote_loss_fraction": FLOAT, "remote_jitter_ms": FLOAT, "send_interval_error_p99_ms": FLOAT,
    }),
    "recording_path": KEYWORD,
    "recording_duration_ms": FLOAT,
    "node": KEYWORD,
    "schema_version": INT,
}


def mappings(properties: dict[str, Any]) -> dict[str, Any]:
    return {"dynamic": "strict", "properties": properties}


def index_settings(settings: ElasticsearchSettings, alias: str) -> dict[str, Any]:
    """Per-index settings. Serverless manages shards itself and has no ILM."""
    out: dict[str, Any] = {}
    if settings.server_mode == "stack":
        out["number_of_shards"] = settings.number_of_shards
        out["number_of_replicas"] = settings.number_of_replicas
    if settings.ilm.enabled:
        out["index.lifecycle.name"] = settings.ilm.policy_name
        out["index.lifecycle.rollover_alias"] = alias
    return out


def index_template(settings: ElasticsearchSettings, alias: str, properties: dict[str, Any]) -> dict[str, Any]:
    """Body of `PUT _index_template/<alias>`: every index `<alias>-*` gets these settings
    and mappings (the rollover's new indices included)."""
    return {
        "index_patterns": [f"{alias}-*"],
        "priority": settings.template_priority,
        "template": {"settings": index_settings(settings, alias), "mappings": mappings(properties)},
        "_meta": {"managed_by": "theo", "schema_version": SCHEMA_VERSION},
    }


def templates(settings: ElasticsearchSettings) -> dict[str, dict[str, Any]]:
    """Template name -> body, for the turns and the calls aliases."""
    return {
        settings.turns_alias: index_template(settings, settings.turns_alias, TURN_PROPERTIES),
        settings.calls_alias: index_template(settings, settings.calls_alias, CALL_PROPERTIES),
    }


def ilm_policy(settings: ElasticsearchSettings) -> dict[str, Any]:
    """Body of `PUT _ilm/policy/<name>`: hot (rollover), warm (shrink + forcemerge), delete."""
    ilm = settings.ilm
    delete_actions: dict[str, Any] = {"delete": {}}
    if ilm.wait_for_snapshot_policy:
        delete_actions = {"wait_for_snapshot": {"policy": ilm.wait_for_snapshot_policy}, "delete": {}}
    return {
        "policy": {
            "_meta": {"managed_by": "theo"},
            "phases": {
                "hot": {
                    "min_age": "0ms",
                    "actions": {
                        "rollover": {
                            "max_primary_shard_size": ilm.rollover_max_primary_shard_size,
                            "max_age": ilm.rollover_max_age,
                        },
                    },
                },
                "warm": {
                    "min_age": ilm.warm_min_age,
                    "actions": {
                        "shrink": {"number_of_shards": ilm.warm_shrink_shards},
                        "forcemerge": {"max_num_segments": ilm.warm_forcemerge_segments},
                    },
                },
                "delete": {"min_age": ilm.delete_min_age, "actions": delete_actions},
            },
        }
    }


def first_index(alias: str) -> str:
    """The bootstrap index of a write alias; rollover names the next `<alias>-000002`."""
    return f"{alias}-000001"


def bootstrap_body(alias: str) -> dict[str, Any]:
    """Body of `PUT <alias>-000001`: the index becomes the alias's write index."""
    return {"aliases": {alias: {"is_write_index": True}}}
