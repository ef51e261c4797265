"""Call documents built from Theo's own CallRecord, the explicit mapping that covers every
field, and the `[call_data]` config section (environment overrides included)."""

from __future__ import annotations

import msgspec
import pytest

from tests.calldata.call_records import T0, demo_call, demo_media
from theo_ray.calldata import es_schema
from theo_ray.calldata.build import build_call_documents
from theo_ray.calldata.documents import CallDocument, TurnDocument
from theo_ray.calldata.redaction import Redactor
from theo_ray.calldata.settings import RedactionSettings
from theo_ray.config import load_config
from theo_ray.errors import ConfigError

ENDED = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def _build(record=None, **kw):
    kw.setdefault("redactor", Redactor.from_settings(RedactionSettings()))
    return build_call_documents(record or demo_call(), ended_wall_time=ENDED, media=demo_media(), **kw)


def test_a_call_becomes_one_summary_and_one_document_per_turn():
    docs = _build(recording_path="/var/theo/rec/sess-demo-0001.wav", node="node-a")
    assert [t.doc_id for t in docs.turns] == [f"sess-demo-0001:turn:{i}" for i in (1, 2, 3)]
    call = docs.call
    assert call.doc_id == "sess-demo-0001:call" and call.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    # Wall clock placed from the record's monotonic instants: the call lasted 40 s.
    assert (call.started_at, call.ended_at, call.duration_ms) == ("2025-12-31T23:59:20.000Z", "2026-01-01T00:00:00.000Z", 40000.0)
    assert docs.turns[1].timestamp == "2025-12-31T23:59:38.000Z"  # T0 + 18 s
    assert call.outcome == "completed" and call.end_reason == "caller_hangup"
    assert call.recording_path.endswith(".wav") and call.node == "node-a"
    m = call.metrics
    assert (m.turns, m.barge_ins, m.backchannels, m.fillers_played, m.model_timeouts, m.tool_calls) == (3, 1, 1, 3, 1, 1)
    assert m.response_ms_p50 == pytest.approx(3240.0)
    assert [(s.stage, s.count) for s in call.model_timeouts] == [("llm_first_token", 1)]
    assert call.media is not None and call.media.mos == 4.31 and call.media.loss_fraction == pytest.approx(4 / 2004, abs=1e-4)


def test_the_conversation_metrics_of_gap_16_come_from_the_record():
    record = demo_call()
    record.model_timeouts = {}  # no emergency: the conversation itself ended the call
    record.repeat_requests = 1
    record.readbacks = 1
    m = _build(record).call.metrics
    assert (m.task_completed, m.turns_to_resolution) == (True, 3)
    assert (m.repeat_requests, m.repeat_rate, m.readbacks) == (1, pytest.approx(1 / 3, abs=1e-4), 1)
    assert m.slow_responses == 3  # every reply's first sound came 3.24 s after the caller's turn
    # A model timeout (the emergency phrase and a human) is no completed task.
    stalled = _build().call.metrics
    assert (stalled.task_completed, stalled.turns_to_resolution) == (False, None)


def test_turn_documents_carry_what_the_caller_heard_the_stage_timings_and_the_barge_in():
    first, second, third = _build().turns
    assert first.interrupted and first.agent_text_heard.endswith("89 reais—")
    assert first.agent_text_generated.endswith("boleto por SMS?")
    assert first.barge_in_verdict == "interruption" and first.barge_ins[0].reaction_ms == pytest.approx(20.0)
    assert second.barge_in_verdict == "backchannel" and third.barge_in_verdict == ""
    assert third.agent_text_heard == third.agent_text_generated  # not interrupted: the whole reply drained
    t = first.timings
    assert (t.endpointing_ms, t.stt_ms, t.llm_first_token_ms, t.tts_first_chunk_ms, t.response_ms) == pytest.approx(
        (660.0, 40.0, 650.0, 1100.0, 3240.0))
    assert second.endpoint_rule == "dictation"
    assert second.tool_calls[0].name == "send_invoice_sms" and second.tool_calls[0].wait_ms == pytest.approx(50.0)


def test_cpf_and_phone_numbers_are_redacted_everywhere_before_any_document_exists():
    docs = _build()
    text = msgspec.json.encode(docs).decode()
    assert "123.456.789-09" not in text and "91234-5678" not in text
    assert "Meu CPF é [cpf], pode mandar no [phone]." in text
    # Off: the words stay as said.
    raw = msgspec.json.encode(build_call_documents(demo_call(), ended_wall_time=ENDED)).decode()
    assert "123.456.789-09" in raw


@pytest.mark.parametrize(("change", "outcome"), [
    (lambda r: setattr(r, "transferred_to", "financeiro"), "transferred"),
    (lambda r: setattr(r, "end_reason", "call_actor_lost"), "failed"),
    (lambda r: setattr(r, "turns", []), "abandoned"),
])
def test_the_outcome_follows_the_record(change, outcome):
    record = demo_call()
    change(record)
    assert _build(record).call.outcome == outcome


def test_a_record_closed_before_the_call_started_still_builds():
    from theo_ray.conversation.records import CallRecord

    docs = build_call_documents(CallRecord(session_id="s-empty", end_reason="gateway_crash"), ended_wall_time=ENDED)
    assert docs.turns == [] and docs.call.duration_ms == 0.0 and docs.call.outcome == "failed"
    assert docs.call.started_at == docs.call.ended_at == "2026-01-01T00:00:00.000Z"
    assert T0  # the demo record's clock is unrelated to the wall clock


def _struct_shape(tp) -> dict:
    """Field names (encoded, nested) of a Struct type, as the JSON document has them."""
    info = msgspec.inspect.type_info(tp)
    out = {}
    for field in info.fields:
        t = field.type
        if isinstance(t, msgspec.inspect.UnionType):  # X | None
            t = next(x for x in t.types if not isinstance(x, msgspec.inspect.NoneType))
        if isinstance(t, msgspec.inspect.ListType):
            t = t.item_type
        out[field.encode_name] = _struct_shape(t.cls) if isinstance(t, msgspec.inspect.StructType) else None
    return out


def _mapping_shape(properties: dict) -> dict:
    return {name: _mapping_shape(p["properties"]) if "properties" in p else None for name, p in properties.items()}


@pytest.mark.parametrize(("struct", "properties"), [(TurnDocument, es_schema.TURN_PROPERTIES),
                                                    (CallDocument, es_schema.CALL_PROPERTIES)])
def test_every_document_field_has_an_explicit_mapping_and_no_mapping_is_stale(struct, properties):
    assert _struct_shape(struct) == _mapping_shape(properties)


def test_text_is_analysed_in_portuguese_and_ids_are_keywords():
    p = es_schema.TURN_PROPERTIES
    assert p["caller_text"]["analyzer"] == "portuguese" and p["agent_text_heard"]["analyzer"] == "portuguese"
    assert p["session_id"]["type"] == p["trace_id"]["type"] == p["endpoint_rule"]["type"] == "keyword"
    assert p["@timestamp"]["type"] == "date" and p["timings"]["properties"]["response_ms"]["type"] == "float"
    assert es_schema.mappings(p)["dynamic"] == "strict"
    assert all(v.get("dynamic") == "strict" for v in p.values() if v.get("type") in ("object", "nested"))


def test_call_data_config_defaults_and_environment_overrides(tmp_path):
    defaults = load_config(None, environ={}).call_data
    assert defaults.jsonl.enabled and defaults.elasticsearch.url == ""
    assert defaults.elasticsearch.turns_alias.startswith("theo-") and defaults.elasticsearch.calls_alias.startswith("theo-")
    ilm = defaults.elasticsearch.ilm
    assert (ilm.rollover_max_primary_shard_size, ilm.rollover_max_age, ilm.warm_min_age, ilm.delete_min_age) == (
        "10gb", "7d", "30d", "90d")
    config = load_config(None, environ={"THEO__CALL_DATA__ELASTICSEARCH__URL": "https://es.example:9243",
                                        "THEO__CALL_DATA__ELASTICSEARCH__ILM__DELETE_MIN_AGE": "180d"})
    assert config.call_data.elasticsearch.url == "https://es.example:9243"
    assert config.call_data.elasticsearch.ilm.delete_min_age == "180d"
    toml = tmp_path / "theo.toml"
    toml.write_text('[call_data.elasticsearch]\ncalls_alias = "calls"\n')
    with pytest.raises(ConfigError, match="call_data.elasticsearch.calls_alias"):
        load_config(toml, environ={})
    with pytest.raises(ConfigError, match="warm_min_age"):
        load_config(None, environ={"THEO__CALL_DATA__ELASTICSEARCH__ILM__WARM_MIN_AGE": "soon"})
    with pytest.raises(ConfigError, match="call_data.redaction.patterns.bad"):
        load_config(None, environ={"THEO__CALL_DATA__REDACTION__PATTERNS__BAD": '"(unclosed"'})
