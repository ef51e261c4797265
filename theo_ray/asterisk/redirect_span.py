"""The AMI Redirect of a transfer as a span of the call's trace, recorded inside the
AmiBridge: `call.transfer.ami_redirect`, child of the span the CallActor sent in the
transfer request's TraceContext, with the caller's channel, the dialplan target, the
outcome and the Redirect's own latency (Status + Redirect round trips, AmiClient's clock).

A transfer without a trace (the `theo asterisk transfer` command, a test) gets no span:
every span here belongs to one call's trace.
"""

from __future__ import annotations

from opentelemetry.trace import Status, StatusCode

from theo_ray.asterisk.transfer import AmiTransferrer, TransferResult
from theo_ray.messages import TraceContext
from theo_ray.telemetry.tracing import configure_tracing, extract, include_transcripts, tracer

SPAN_NAME = "call.transfer.ami_redirect"


def outcome_of(result: TransferResult) -> str:
    """`ok`, `already_at_target` (an earlier Redirect had run), or the error kind."""
    if result.ok:
        return "already_at_target" if result.already_done else "ok"
    return result.error_kind or "failed"


async def traced_transfer(
    transferrer: AmiTransferrer, session_id: str, destination: str, reason: str, trace: TraceContext
) -> TransferResult:
    if not trace.traceparent:
        return await transferrer.transfer(session_id, destination, reason)
    configure_tracing("theo-ami-bridge")
    target = transferrer.target(destination)
    attributes = {
        "theo.session_id": session_id,
        "transfer.destination": destination,
        "ami.context": target.context if target else "",
        "ami.exten": target.exten if target else "",
        "ami.priority": target.priority if target else 0,
    }
    if include_transcripts():  # the reason may quote the caller
        attributes["transfer.reason"] = reason
    with tracer().start_as_current_span(SPAN_NAME, context=extract(trace), attributes=attributes) as span:
        result = await transferrer.transfer(session_id, destination, reason)
        span.set_attribute("ami.channel", result.channel)
        span.set_attribute("ami.result", outcome_of(result))
        span.set_attribute("ami.latency_ms", round(result.duration_ms, 2))
        if not result.ok:
            span.set_status(Status(StatusCode.ERROR, result.error[:200]))
    return result
