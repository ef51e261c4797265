"""Which OTLP exporter a process uses, from its environment: the protocol (HTTP/protobuf or
gRPC) and the endpoint, Theo's own variables (`telemetry.otlp_endpoint`,
`telemetry.otlp_protocol`) first, then the standard `OTEL_EXPORTER_OTLP_*` ones.

HTTP posts to `<endpoint>/v1/traces` (added when the endpoint has no path; a signal-specific
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used as is); gRPC dials the endpoint itself
(`http://tempo:4317`; plaintext for `http://`, TLS for `https://`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from opentelemetry.sdk.trace.export import SpanExporter

OTLP_ENDPOINT_ENV = "THEO__TELEMETRY__OTLP_ENDPOINT"
OTLP_PROTOCOL_ENV = "THEO__TELEMETRY__OTLP_PROTOCOL"
PROTOCOLS = ("http/protobuf", "grpc")
DEFAULT_PROTOCOL = "http/protobuf"
_PROTOCOL_VARS = (OTLP_PROTOCOL_ENV, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
log = logging.getLogger("theo.telemetry")


def _get(env: Mapping[str, str], key: str) -> str:
    return env.get(key, "").strip().strip('"')


def otlp_protocol(environ: Mapping[str, str] | None = None) -> str:
    """"http/protobuf" or "grpc"; an unsupported value (http/json) is logged and HTTP used."""
    env = os.environ if environ is None else environ
    for key in _PROTOCOL_VARS:
        value = _get(env, key).lower()
        if value:
            if value in PROTOCOLS:
                return value
            log.warning("%s=%s is not supported (only %s): exporting over %s", key, value, ", ".join(PROTOCOLS),
                        DEFAULT_PROTOCOL)
            return DEFAULT_PROTOCOL
    return DEFAULT_PROTOCOL


def otlp_traces_url(environ: Mapping[str, str] | None = None) -> str:
    """The OTLP/HTTP traces URL from the environment ("" when none is set)."""
    env = os.environ if environ is None else environ
    endpoint = _get(env, OTLP_ENDPOINT_ENV)
    if endpoint:
        return endpoint.rstrip("/") + "/v1/traces" if urlsplit(endpoint).path in ("", "/") else endpoint
    if _get(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return _get(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if _get(env, "OTEL_EXPORTER_OTLP_ENDPOINT"):
        return _get(env, "OTEL_EXPORTER_OTLP_ENDPOINT").rstrip("/") + "/v1/traces"
    return ""


def otlp_target(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(protocol, endpoint) of the traces exporter; endpoint "" when none is set."""
    env = os.environ if environ is None else environ
    protocol = otlp_protocol(env)
    if protocol == "grpc":
        for key in (OTLP_ENDPOINT_ENV, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            if _get(env, key):
                return protocol, _get(env, key)
        return protocol, ""
    return protocol, otlp_traces_url(env)


def otlp_exporter(protocol: str, endpoint: str, timeout_s: float = 5.0) -> SpanExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint, insecure=not endpoint.startswith("https://"), timeout=timeout_s)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(endpoint=endpoint, timeout=timeout_s)
