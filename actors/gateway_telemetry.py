"""The SIP gateway shard's telemetry: one span per dialog and the shard's metrics.

Spans: `sip.dialog` from the INVITE's arrival (the shard process's CLOCK_MONOTONIC stamp)
to the BYE, with a child `sip.invite` from the INVITE to the supervisor's answer (the
200 OK leaves right after). The dialog span is the root of the call's trace: its context
goes to the CallSupervisor and the CallActor inside `CallSetup.trace`.

Metrics (every `telemetry.metrics_interval_s`, from the shard's GatewayStats): dialogs
held, refusals by reason, INVITE -> 200 OK.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from theo_ray.sip.messages import CallEnded, CallSetup
from theo_ray.sip.stats import REFUSAL_COUNTERS, GatewayStats
from theo_ray.telemetry.metrics import DeltaCounter, TheoMetrics, sample_forever
from theo_ray.telemetry.tracing import configure_tracing, inject, tracer

log = logging.getLogger("theo.sip.gateway")


def _wall_ns(monotonic: float) -> int:
    return int((monotonic - time.monotonic()) * 1e9) + time.time_ns()


class DialogSpans:
    """The open `sip.dialog` spans of one shard, by session id."""

    def __init__(self, shard: str) -> None:
        configure_tracing("theo-sip-gateway")
        self.shard = shard
        self._open: dict[str, trace.Span] = {}

    def invite(self, setup: CallSetup) -> trace.Span:
        start = _wall_ns(setup.invite_at) if setup.invite_at else time.time_ns()
        span = tracer().start_span("sip.dialog", start_time=start, attributes={
            "theo.session_id": setup.session_id, "sip.call_id": setup.sip_call_id, "sip.shard": self.shard,
            "sip.codec": setup.remote.codec, "sip.delayed_offer": not setup.remote.port,
        })
        self._open[setup.session_id] = span
        return span

    def context(self, span: trace.Span):
        return inject(span)

    def answered(self, setup: CallSetup, span: trace.Span, error: BaseException | None = None) -> None:
        start = _wall_ns(setup.invite_at) if setup.invite_at else None
        child = tracer().start_span("sip.invite", context=trace.set_span_in_context(span), start_time=start)
        if error is not None:
            child.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.set_status(Status(StatusCode.ERROR, "setup failed"))
        child.end()
        span.add_event("sip.200_ok" if error is None else "sip.setup_failed")
        if error is not None:
            self._end(setup.session_id, "setup_failed")

    def ended(self, ended: CallEnded) -> None:
        self._end(ended.session_id, ended.reason, ended.sip_status)

    def _end(self, session_id: str, reason: str, status: int = 0) -> None:
        span = self._open.pop(session_id, None)
        if span is not None:
            span.set_attribute("sip.end_reason", reason)
            if status:
                span.set_attribute("sip.last_status", status)
            span.end()

    def close_all(self, reason: str = "gateway_shutdown") -> None:
        for session_id in list(self._open):
            self._end(session_id, reason)


class ShardMetrics:
    def __init__(self, shard: str, enabled: bool = True) -> None:
        self.metrics = TheoMetrics({"shard": shard}, enabled=enabled)
        self._deltas = DeltaCounter()

    def sample(self, stats: GatewayStats) -> None:
        m, d = self.metrics, self._deltas.delta
        m.set("theo_sip_calls_active", stats.active_calls)
        for reason in REFUSAL_COUNTERS:
            m.inc("theo_sip_refused_total", d((reason,), getattr(stats, reason)), reason=reason)
        new = int(d(("answered",), stats.answered))
        for value in stats.answer_ms[-new:] if new > 0 else ():
            m.observe("theo_sip_answer_ms", value)

    async def run(self, stats: Callable[[], Awaitable[GatewayStats]], interval_s: float) -> None:
        await sample_forever(self.sample, stats, interval_s, "shard")
