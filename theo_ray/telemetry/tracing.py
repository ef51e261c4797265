"""OpenTelemetry tracing: one trace per call, context carried in every request.

Each process (driver, CallActor, deployment replica) calls ``configure_tracing`` once; in
the embedded default spans are written as JSON lines to a folder (one file per process),
which the demo and notebooks read. An OTLP exporter can be added for Tempo/Jaeger later
without touching the call sites. Trace context crosses Ray boundaries inside the typed
requests (``TraceContext.traceparent``), not through Ray's own tracing hooks.
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
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from theo_ray.messages import TraceContext

TRACE_DIR_ENV = "THEO_TRACE_DIR"
_propagator = TraceContextTextMapPropagator()
_configured = False
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


def configure_tracing(service: str, folder: str | os.PathLike[str] | None = None) -> None:
    """Install a tracer provider for this process once; no-op without a trace folder."""
    global _configured
    with _lock:
        if _configured:
            return
        target = folder or os.environ.get(TRACE_DIR_ENV)
        if not target:
            _configured = True
            return
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(Path(target))))
        trace.set_tracer_provider(provider)
        _configured = True


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
    """A span inside a deployment, child of the call's span carried by the request."""
    configure_tracing("theo-deployment")
    with tracer().start_as_current_span(name, context=extract(trace_ctx), attributes=dict(attributes or {})) as span:
        yield span
