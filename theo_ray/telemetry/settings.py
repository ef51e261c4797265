"""The `[telemetry]` and `[health]` sections of Theo's config (README "Observability")."""

from __future__ import annotations

from typing import Literal

import msgspec

from theo_ray.errors import ConfigError

_STRICT = {"forbid_unknown_fields": True, "kw_only": True}


class TelemetrySettings(msgspec.Struct, **_STRICT):
    # The master switch: off, no process traces (not even to the OTEL_EXPORTER_OTLP_*
    # endpoint of its environment) and no Theo metric is recorded, whatever the keys below
    # say. `theo bench telemetry-overhead` compares a plane with it on and one with it off.
    enabled: bool = True
    # Spans as JSON lines under <paths.output_dir>/traces (one file per process): the
    # embedded default the notebooks read. Off: no span is written (OTLP still exports).
    jsonl: bool = True
    # OTLP traces endpoint, e.g. "http://tempo:4318" over HTTP (".../v1/traces" is added when
    # the path is empty) or "http://tempo:4317" over gRPC. "" = none; the standard
    # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT variables are honoured
    # when this is empty.
    otlp_endpoint: str = ""
    # The standard OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL is honoured while this is the default.
    otlp_protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    # Caller and agent words in span attributes (privacy: off by default).
    include_transcripts: bool = False
    # Theo's own metrics through ray.util.metrics (Ray's Prometheus endpoint, the dashboard).
    metrics: bool = True
    # How often the CallSupervisor and the gateway shards sample their gauges and counters.
    metrics_interval_s: float = 2.0

    @property
    def records_metrics(self) -> bool:
        return self.enabled and self.metrics

    def __post_init__(self) -> None:
        if self.otlp_endpoint and not self.otlp_endpoint.startswith(("http://", "https://")):
            raise ConfigError("telemetry.otlp_endpoint", f"must be an http(s) URL, got {self.otlp_endpoint!r}")
        if not 0.1 <= self.metrics_interval_s <= 60.0:
            raise ConfigError("telemetry.metrics_interval_s", f"must be 0.1..60 s, got {self.metrics_interval_s}")


class HealthSettings(msgspec.Struct, **_STRICT):
    # `theo up` serves /health, /ready and /metrics here (a named actor on the head node).
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8081
    # A probe (deployment info(), gateway status, AMI health) slower than this is a failure.
    probe_timeout_s: float = 2.0
    # AMI is ready only with a Pong younger than this (the seed: Ping under 2 s).
    ami_max_pong_age_s: float = 2.0
    # /ready answers from a result at most this old (probes are not run per request).
    cache_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("health.port", f"must be 0..65535, got {self.port}")
        if self.probe_timeout_s <= 0:
            raise ConfigError("health.probe_timeout_s", "must be > 0")
