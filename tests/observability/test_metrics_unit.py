"""Theo's metric definitions and the records -> metrics mapping, in memory (no Ray)."""

from __future__ import annotations

import msgspec
import pytest

from theo_ray.actors.gateway_telemetry import ShardMetrics
from theo_ray.actors.plane_metrics import PlaneMetrics, turn_stages
from theo_ray.circuit_breaker import BreakerState
from theo_ray.conversation.records import BargeInRecord, CallRecord, TurnRecord
from theo_ray.media.media_stats import MediaStats
from theo_ray.sip.stats import GatewayStats
from theo_ray.telemetry.metrics import DEFINITIONS, LATENCY_MS, DeltaCounter, TheoMetrics
from theo_ray.telemetry.settings import HealthSettings, TelemetrySettings
from theo_ray.telemetry.tracing import otlp_traces_url, telemetry_env


def test_definitions_are_named_and_documented():
    for name, d in DEFINITIONS.items():
        assert name.startswith("theo_") and d.unit and d.description
        assert (d.kind == "counter") == name.endswith("_total"), name
        assert (d.kind == "histogram") == bool(d.buckets), name
        assert list(d.buckets) == sorted(d.buckets), name
    for target in (30, 100, 1500, 2000):  # overhead, barge-in, first audio, dead air: on a bucket edge
        assert target in LATENCY_MS


def test_a_typo_or_a_missing_tag_raises():
    m = TheoMetrics({"plane": "p"}, backend="memory")
    with pytest.raises(KeyError):
        m.inc("theo_call_opened_total")
    with pytest.raises(KeyError):
        m.inc("theo_barge_ins_total")  # no verdict
    with pytest.raises(TypeError):
        m.set("theo_fillers_total", 1)
    TheoMetrics({"plane": "p"}, backend="memory", enabled=False).inc("theo_barge_ins_total")  # off: nothing


def _turn(**kw) -> TurnRecord:
    base = dict(index=1, caller_text="quero a fatura", endpoint_rule="silence", speech_end_at=10.0,
                end_of_turn_at=10.6, stt_final_at=10.8, llm_first_token_at=11.2, llm_first_sentence_at=11.5,
                tts_first_chunk_at=12.1, first_rtp_at=12.2, filler_at=11.0)
    base.update(kw)
    return TurnRecord(**base)


def test_turn_stages_from_a_record():
    stages = turn_stages(_turn())
    assert stages["endpointing"] == pytest.approx(600)
    assert stages["stt_final"] == pytest.approx(200)
    assert stages["llm_first_token"] == pytest.approx(400)
    assert stages["tts_first_chunk"] == pytest.approx(600)
    assert stages["first_audio"] == pytest.approx(1000)  # the filler counts
    assert stages["first_content_audio"] == pytest.approx(2200)
    assert turn_stages(_turn(filler_at=0.0))["first_audio"] == pytest.approx(2200)
    assert turn_stages(_turn(first_rtp_at=0.0, filler_at=0.0))["first_audio"] is None


def test_a_read_back_is_counted_as_its_turn_is_done():
    pm = PlaneMetrics("plane-a", backend="memory")
    pm.turn_done(_turn())
    pm.turn_done(_turn(index=2, read_back="45231899017"))  # a dictated CPF read back, not answered
    assert pm.metrics.value("theo_readbacks_total") == 1


def test_plane_metrics_from_turns_barge_ins_and_the_call_end():
    pm = PlaneMetrics("plane-a", backend="memory")
    pm.turn_done(_turn())
    pm.turn_done(_turn(index=2, filler_at=0.0, first_rtp_at=12.5))  # 2.5 s of nothing: dead air
    pm.barge_in(BargeInRecord(onset_at=20.0, paused_at=20.05, verdict="interruption"))
    pm.barge_in(BargeInRecord(onset_at=30.0, paused_at=30.02, verdict="backchannel"))
    record = CallRecord(session_id="s", started_at=1.0, ended_at=61.0, fillers_played=2, repeat_requests=1,
                        silence_prompts=1, llm_fallbacks=1, model_timeouts={"llm_first_token": 1},
                        turns=[_turn()])
    media = MediaStats(codec="PCMU", packets_in=3000, expected=3000, lost=30, mos=4.3, jitter_mean_ms=2.5)
    pm.call_closed("caller_bye", record, media)
    m = pm.metrics
    assert m.value("theo_turns_total", rule="silence") == 2
    assert m.value("theo_turn_stage_ms", stage="first_audio") == pytest.approx([1000, 2500])
    assert m.value("theo_dead_air_total") == 1
    assert m.value("theo_barge_ins_total", verdict="interruption") == 1
    assert m.value("theo_barge_in_reaction_ms") == pytest.approx([50, 20])
    assert m.value("theo_calls_closed_total", reason="caller_bye", outcome="completed") == 1
    assert m.value("theo_call_duration_seconds") == [60.0]
    assert (m.value("theo_fillers_total"), m.value("theo_repeat_requests_total"),
            m.value("theo_silence_prompts_total"), m.value("theo_llm_fallbacks_total")) == (2, 1, 1, 1)
    assert m.value("theo_model_timeouts_total", stage="llm_first_token") == 1
    assert m.value("theo_call_mos") == [4.3] and m.value("theo_call_loss_ratio") == [0.01]
    assert m.value("theo_call_jitter_ms") == [2.5]
    pm.call_closed("orphaned", None, None)  # a dead actor's call: counted, no figures
    assert m.value("theo_calls_closed_total", outcome="lost") == 1


class _Stats(msgspec.Struct):
    active: int = 1
    warm: int = 2
    opened: int = 5
    open_failures: int = 0
    failovers: int = 1
    failover_failures: int = 0
    reaped: int = 0
    dialogs_reaped: int = 1
    breakers: list[BreakerState] = []
    overload_refusals: dict[str, int] = {}
    cpu_percent: float = 0.0


def test_sampled_counters_count_increments_once():
    pm = PlaneMetrics("p", backend="memory")
    open_llm = BreakerState("llm", "open", 3, 3, 1, 0)
    pm.sample(_Stats(breakers=[open_llm]))
    pm.sample(_Stats(opened=7, warm=0, breakers=[open_llm]))
    m = pm.metrics
    assert m.value("theo_calls_opened_total") == 7
    assert m.value("theo_failovers_total", result="ok") == 1
    assert m.value("theo_orphans_reaped_total", kind="dialog") == 1
    assert m.value("theo_warm_pool_size") == 0 and m.value("theo_calls_active") == 1
    assert m.value("theo_breaker_state", model="llm") == 2
    pm.sample(_Stats(overload_refusals={"cpu": 2, "pool": 1}, cpu_percent=97.0))
    pm.sample(_Stats(overload_refusals={"cpu": 3, "pool": 1}, cpu_percent=50.0))
    assert m.value("theo_calls_refused_overload_total", rule="cpu") == 3
    assert m.value("theo_calls_refused_overload_total", rule="pool") == 1
    assert m.value("theo_node_cpu_percent") == 50.0
    d = DeltaCounter()
    assert [d.delta(("x",), v) for v in (3, 5, 2)] == [3, 2, 2]  # 5 -> 2: a restart counts from 0


def test_shard_metrics_from_gateway_stats():
    sm = ShardMetrics("gw-0")
    sm.metrics.use_ray = False
    sm.sample(GatewayStats(answered=2, answer_ms=[40.0, 60.0], refused_source_rate=3, active_calls=1))
    sm.sample(GatewayStats(answered=3, answer_ms=[40.0, 60.0, 80.0], refused_source_rate=3, rejected_403=1))
    m = sm.metrics
    assert m.value("theo_sip_answer_ms") == [40.0, 60.0, 80.0]
    assert m.value("theo_sip_refused_total", reason="refused_source_rate") == 3
    assert m.value("theo_sip_refused_total", reason="rejected_403") == 1
    assert m.value("theo_sip_calls_active") == 0


def test_tracing_environment():
    assert otlp_traces_url({}) == ""
    assert otlp_traces_url({"THEO__TELEMETRY__OTLP_ENDPOINT": "http://tempo:4318"}) == "http://tempo:4318/v1/traces"
    assert otlp_traces_url({"THEO__TELEMETRY__OTLP_ENDPOINT": "http://c:4318/x/traces"}) == "http://c:4318/x/traces"
    assert otlp_traces_url({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4318/"}) == "http://j:4318/v1/traces"
    assert otlp_traces_url({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://j:4318/v1/traces",
                            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://k:4318"}) == "http://j:4318/v1/traces"
    env = telemetry_env("/tmp/t", "http://tempo:4318", include_transcripts=False)
    assert env == {"THEO_TRACE_DIR": "/tmp/t", "THEO__TELEMETRY__OTLP_ENDPOINT": "http://tempo:4318"}


def test_otlp_protocol_and_endpoint_from_the_environment():
    from theo_ray.telemetry.otlp import otlp_target
    from theo_ray.telemetry.tracing import telemetry_env_for

    assert otlp_target({}) == ("http/protobuf", "")
    assert otlp_target({"THEO__TELEMETRY__OTLP_ENDPOINT": "http://tempo:4318"}) == (
        "http/protobuf", "http://tempo:4318/v1/traces")
    # gRPC dials the endpoint itself: no /v1/traces path.
    grpc = {"THEO__TELEMETRY__OTLP_ENDPOINT": "http://tempo:4317", "THEO__TELEMETRY__OTLP_PROTOCOL": "grpc"}
    assert otlp_target(grpc) == ("grpc", "http://tempo:4317")
    assert otlp_target({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) == (
        "grpc", "http://j:4317")
    assert otlp_target({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}) == ("http/protobuf",
                                                                                  "http://j:4317/v1/traces")
    # Unsupported (http/json): HTTP/protobuf, logged, not a crash.
    assert otlp_target({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})[0] \
        == "http/protobuf"
    settings = TelemetrySettings(otlp_endpoint="http://tempo:4317", otlp_protocol="grpc", jsonl=False)
    assert telemetry_env_for(settings, "/tmp/out") == grpc
    from theo_ray.config import config_from_mapping
    from theo_ray.errors import ConfigError

    with pytest.raises((ConfigError, msgspec.ValidationError)):
        config_from_mapping({"telemetry": {"otlp_protocol": "http/json"}})


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_spans_reach_an_otlp_receiver_over_each_protocol(protocol):
    """The exporter Theo builds for each protocol, against a receiver on loopback that
    decodes the protobuf: both spans arrive, with the parent link."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from tests.observability.otlp_receiver import OtlpGrpcReceiver, OtlpReceiver
    from theo_ray.telemetry.otlp import otlp_exporter, otlp_target

    with (OtlpGrpcReceiver() if protocol == "grpc" else OtlpReceiver()) as receiver:
        target = otlp_target({"THEO__TELEMETRY__OTLP_ENDPOINT": receiver.endpoint,
                              "THEO__TELEMETRY__OTLP_PROTOCOL": protocol})
        provider = TracerProvider(resource=Resource.create({"service.name": "theo-test"}))
        provider.add_span_processor(BatchSpanProcessor(otlp_exporter(*target)))
        tracer = provider.get_tracer("theo")
        with tracer.start_as_current_span("call") as call:
            with tracer.start_as_current_span("turn", attributes={"turn.index": 1}):
                pass
        assert provider.force_flush(10_000)
        provider.shutdown()
        spans = {s.name: s for s in receiver.snapshot()}
    assert set(spans) == {"call", "turn"}, spans
    assert spans["turn"].parent_id == spans["call"].span_id == f"{call.get_span_context().span_id:016x}"
    assert spans["turn"].service == "theo-test" and spans["turn"].attributes["turn.index"] == 1


def test_telemetry_off_switches_off_spans_and_metrics():
    """telemetry.enabled = false: processes get an environment that installs no exporter
    (even with an OTEL_EXPORTER_OTLP_* endpoint inherited), and no metric is recorded."""
    from theo_ray.telemetry.tracing import telemetry_env_for, tracing_enabled

    on = TelemetrySettings(otlp_endpoint="http://tempo:4318")
    off = TelemetrySettings(enabled=False, otlp_endpoint="http://tempo:4318")
    assert telemetry_env_for(on, "/tmp/out") == {"THEO_TRACE_DIR": "/tmp/out/traces",
                                                 "THEO__TELEMETRY__OTLP_ENDPOINT": "http://tempo:4318"}
    assert telemetry_env_for(msgspec.structs.replace(on, jsonl=False), "/tmp/out") == {
        "THEO__TELEMETRY__OTLP_ENDPOINT": "http://tempo:4318"}
    env = telemetry_env_for(off, "/tmp/out")
    assert env == {"THEO__TELEMETRY__ENABLED": "false"}
    assert not tracing_enabled({**env, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4318"})
    assert tracing_enabled({}) and tracing_enabled({"THEO__TELEMETRY__ENABLED": "true"})
    assert on.records_metrics and not off.records_metrics
    assert not TelemetrySettings(metrics=False).records_metrics


def test_a_deployment_request_without_a_call_trace_gets_no_span():
    from opentelemetry import trace

    from theo_ray.messages import TraceContext
    from theo_ray.telemetry.tracing import deployment_span

    for ctx in (None, TraceContext()):
        with deployment_span("stt.transcribe", ctx, {"audio.seconds": 1.0}) as span:
            span.set_attribute("x", 1)  # accepted, recorded nowhere
            assert span is trace.INVALID_SPAN and not span.is_recording()


def test_settings_are_checked():
    from theo_ray.config import config_from_mapping
    from theo_ray.errors import ConfigError

    cfg = config_from_mapping({"telemetry": {"otlp_endpoint": "http://tempo:4318"}, "health": {"port": 9000}})
    assert cfg.telemetry.otlp_endpoint == "http://tempo:4318" and cfg.health.port == 9000
    assert cfg.health.host == "127.0.0.1" and HealthSettings().port == 8081
    with pytest.raises(ConfigError, match="telemetry.otlp_endpoint"):
        TelemetrySettings(otlp_endpoint="tempo:4318")
    with pytest.raises(ConfigError, match="health.port"):
        HealthSettings(port=70000)


def test_ami_readiness_needs_a_recent_pong():
    from theo_ray.actors.health_server import ami_check
    from theo_ray.asterisk.results import AmiHealth

    def health(logged_in=True, age=0.5):
        return AmiHealth(healthy=logged_in, connected=logged_in, logged_in=logged_in, reason="ok" if logged_in else
                         "connection refused", last_pong_age_s=age, last_ping_rtt_ms=3.0, ami_version="9.0.0",
                         reconnects=0)

    assert ami_check(health(), 2.0)[0]
    ok, why = ami_check(health(age=2.4), 2.0)
    assert not ok and "2.4 s" in why
    assert not ami_check(health(age=None), 2.0)[0]
    ok, why = ami_check(health(logged_in=False), 2.0)
    assert not ok and "connection refused" in why


async def test_traced_call_control_passes_outcomes_through():
    from theo_ray.actors.call_tracing import TracedCallControl
    from theo_ray.conversation.call_control import ControlOutcome
    from theo_ray.conversation.turn_spans import TurnTracer

    class Inner:
        async def transfer(self, destination, reason):
            return ControlOutcome(ok=True, action="transfer", detail=f"Redirect {destination}", duration_ms=12.0)

        async def hangup(self, reason):
            return ControlOutcome(ok=False, action="hangup", detail="no AMI bridge running")

    control = TracedCallControl(Inner(), TurnTracer("s"), via_ami=True)
    assert (await control.transfer("atendimento", "pediu")).detail == "Redirect atendimento"
    assert not (await control.hangup("tchau")).ok
