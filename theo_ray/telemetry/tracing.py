"""OpenTelemetry tracing: one trace per call, context carried in every request.

Each process (driver, gateway shard, CallActor, deployment replica) calls
``configure_tracing`` once. Spans leave through a ``BatchSpanProcessor`` (a background
thread: the call's event loop only appends to a queue) to the exporters the environment
names, inherited from `theo up` or given to each actor as its runtime_env
(``telemetry_env``):

- ``THEO_TRACE_DIR``: JSON lines, one file per process, under the output folder (the
  embedded default; the notebooks group them by trace id);
- ``THEO__TELEMETRY__ENABLED=false`` (the config key ``telemetry.enabled``): no exporter
  at all, whatever else is set (spans are then OpenTelemetry's no-op ones);
- ``THEO__TELEMETRY__OTLP_ENDPOINT`` (the config key ``telemetry.otlp_endpoint``), else the
  standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``: OTLP over
  HTTP/protobuf or gRPC (``telemetry.otlp_protocol``, else ``OTEL_EXPORTER_OTLP_*PROTOCOL``;
  see telemetry/otlp.py) to Tempo, Jaeger or a collector.

Trace context crosses Ray boundaries inside the typed requests (``TraceContext.traceparent``),
not through Ray's own tracing hooks. A process about to be killed (a CallActor at the end of
its call) calls ``flush_spans`` first.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from theo_ray.messages import TraceContext
from theo_ray.telemetry.otlp import (  # noqa: F401 - otlp_traces_url: also imported from here
    DEFAULT_PROTOCOL,
    OTLP_ENDPOINT_ENV,
    OTLP_PROTOCOL_ENV,
    otlp_exporter,
    otlp_target,
    otlp_traces_url,
)
from theo_ray.telemetry.settings import TelemetrySettings

TRACE_DIR_ENV = "THEO_TRACE_DIR"
INCLUDE_TRANSCRIPTS_ENV = "THEO__TELEMETRY__INCLUDE_TRANSCRIPTS"
ENABLED_ENV = "THEO__TELEMETRY__ENABLED"
_propagator = TraceContextTextMapPropagator()
_configured = False
_provider: TracerProvider | None = None
_lock = threading.Lock()


class JsonLinesSpanExporter(SpanExporter):
    """Append finished spans as JSON lines (one file per process, so no write interleaving)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"spans-{os.getpid()}.jsonl"
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            ctx = span.get_span_context()
            lines.append(
                json.dumps(
                    {
                        "trace_id": f"{ctx.trace_id:032x}",
                        "span_id": f"{ctx.span_id:016x}",
                        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
                        "name": span.name,
                        "start_ns": span.start_time,
                        "end_ns": span.end_time,
                        "attributes": dict(span.attributes or {}),
                        "service": span.resource.attributes.get("service.name", ""),
                    },
                    ensure_ascii=False,
                    default=str,
                )
            )
        with self._lock, open(self.path, "a", encoding="utf-8") as sink:
            sink.write("\n".join(lines) + "\n")
        return SpanExportResult.SUCCESS


def telemetry_env(jsonl_dir: str = "", otlp_endpoint: str = "", include_transcripts: bool = False,
                  enabled: bool = True, otlp_protocol: str = DEFAULT_PROTOCOL) -> dict[str, str]:
    """The environment that makes a process trace (or, `enabled=False`, that keeps it from
    tracing): for a runtime_env or os.environ."""
    if not enabled:
        return {ENABLED_ENV: "false"}
    env: dict[str, str] = {}
    if jsonl_dir:
        env[TRACE_DIR_ENV] = str(Path(jsonl_dir).expanduser().resolve())
    if otlp_endpoint:
        env[OTLP_ENDPOINT_ENV] = otlp_endpoint
    if otlp_protocol != DEFAULT_PROTOCOL:
        env[OTLP_PROTOCOL_ENV] = otlp_protocol
    if include_transcripts:
        env[INCLUDE_TRANSCRIPTS_ENV] = "true"
    return env


def telemetry_env_for(settings: TelemetrySettings, output_dir: str) -> dict[str, str]:
    """`telemetry_env` as the `[telemetry]` section says, spans under <output_dir>/traces."""
    traces = str(Path(output_dir).expanduser() / "traces") if settings.jsonl else ""
    return telemetry_env(traces, settings.otlp_endpoint, settings.include_transcripts, settings.enabled,
                         settings.otlp_protocol)


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(ENABLED_ENV, "true").strip().lower() not in ("0", "false", "no", "off")


def include_transcripts() -> bool:
    return os.environ.get(INCLUDE_TRANSCRIPTS_ENV, "").lower() in ("1", "true", "yes")


def configure_tracing(service: str, folder: str | os.PathLike[str] | None = None) -> None:
    """Install a tracer provider for this process once; no-op without any exporter."""
    global _configured, _provider
    with _lock:
        if _configured:
            return
        _configured = True
        if not tracing_enabled():
            return
        target = folder or os.environ.get(TRACE_DIR_ENV)
        protocol, url = otlp_target()
        if not target and not url:
            return
        provider = TracerProvider(resource=Resource.create({"service.name": service, "process.pid": os.getpid()}))
        # OTEL_BSP_* variables still win; otherwise spans leave within 0.5 s, 512 at a time.
        delay = int(os.environ.get("OTEL_BSP_SCHEDULE_DELAY", "500"))
        if target:
            provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(Path(target)), schedule_delay_millis=delay))
        if url:
            provider.add_span_processor(BatchSpanProcessor(otlp_exporter(protocol, url), schedule_delay_millis=delay))
        trace.set_tracer_provider(provider)
        _provider = provider


def flush_spans(timeout_s: float = 2.0) -> bool:
    """Export every finished span now (blocking: call it from a worker thread on a loop)."""
    provider = _provider
    return provider.force_flush(int(timeout_s * 1000)) if provider is not None else True


def tracer() -> trace.Tracer:
    return trace.get_tracer("theo")


def inject(span: trace.Span | None = None) -> TraceContext:
    """The current (or given) span as a TraceContext to put in a request."""
    carrier: dict[str, str] = {}
    ctx = trace.set_span_in_context(span) if span is not None else None
    _propagator.inject(carrier, context=ctx)
    return TraceContext(traceparent=carrier.get("traceparent", ""))


def extract(trace_ctx: TraceContext | None) -> otel_context.Context:
    if not trace_ctx or not trace_ctx.traceparent:
        return otel_context.Context()
    return _propagator.extract({"traceparent": trace_ctx.traceparent})


@contextlib.contextmanager
def deployment_span(
    name: str, trace_ctx: TraceContext | None, attributes: Mapping[str, Any] | None = None
) -> Iterator[trace.Span]:
    """A span inside a deployment, child of the call's span carried by the request. A
    request without one (a call on a plane with telemetry off, a benchmark of the model
    alone) gets a no-op span: no trace is one call's but a call's own."""
    if not trace_ctx or not trace_ctx.traceparent:
        yield trace.INVALID_SPAN
        return
    configure_tracing("theo-deployment")
    with tracer().start_as_current_span(name, context=extract(trace_ctx), attributes=dict(attributes or {})) as span:
        yield span
