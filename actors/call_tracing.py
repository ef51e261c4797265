"""ReportingTurnTracer: the CallActor's TurnTracer that also reports each finished turn
and each barge-in verdict to the CallSupervisor, which records them as metrics
(actors/plane_metrics.py). One actor message per turn, never awaited."""

from __future__ import annotations

import logging

from theo_ray.conversation.records import BargeInRecord, CallRecord, TurnRecord
from theo_ray.conversation.turn_spans import TurnTracer
from theo_ray.messages import TraceContext

log = logging.getLogger("theo.call")


class ReportingTurnTracer(TurnTracer):
    def __init__(self, session_id: str, supervisor=None, parent: TraceContext | None = None,
                 attributes: dict | None = None) -> None:
        super().__init__(session_id, parent=parent, attributes=attributes)
        self._supervisor = supervisor
        self._reported: set[int] = set()

    def _report(self, method: str, item) -> None:
        if self._supervisor is None:
            return
        try:
            getattr(self._supervisor, method).remote(item)
        except Exception as exc:  # noqa: BLE001 - a gone supervisor costs the metric, not the call
            log.debug("metrics report %s failed: %s", method, exc)

    def turn_done(self, turn: TurnRecord) -> None:
        super().turn_done(turn)
        self._reported.add(turn.index)
        self._report("observe_turn", turn)

    def report_unfinished(self, record: CallRecord) -> None:
        """At the call's end: the turns the hang-up cut short (never `turn_done`)."""
        for turn in record.turns:
            if turn.index not in self._reported:
                self._reported.add(turn.index)
                self._report("observe_turn", turn)

    def barge_in_ended(self, barge: BargeInRecord) -> None:
        super().barge_in_ended(barge)
        self._report("observe_barge_in", barge)


class TracedCallControl:
    """A CallControl whose transfers and hang-ups are spans of the call's trace:
    `call.transfer` (attribute `transfer.via`: `ami_redirect` behind Asterisk, `gateway`
    otherwise) as the CallActor waits for it, and `call.hangup`. Behind Asterisk the
    AmiBridge records the Redirect itself as `call.transfer.ami_redirect`, a child of
    `call.transfer` (the span is current while the request to the bridge is built)."""

    def __init__(self, inner, tracer: TurnTracer, via_ami: bool) -> None:
        self._inner = inner
        self._tracer = tracer
        self._via = "ami_redirect" if via_ami else "gateway"

    async def _spanned(self, name: str, attributes: dict, action):
        from opentelemetry.trace import Status, StatusCode

        from theo_ray.telemetry.tracing import extract, tracer

        with tracer().start_as_current_span(name, context=extract(self._tracer.context()), attributes=attributes) as span:
            outcome = await action()
            span.set_attribute("control.ok", outcome.ok)
            span.set_attribute("control.detail", outcome.detail[:200])
            span.set_attribute("control.duration_ms", outcome.duration_ms)
            if not outcome.ok:
                span.set_status(Status(StatusCode.ERROR, outcome.detail[:200]))
            return outcome

    async def transfer(self, destination: str, reason: str):
        return await self._spanned("call.transfer", {"transfer.destination": destination, "transfer.via": self._via},
                                   lambda: self._inner.transfer(destination, reason))

    async def hangup(self, reason: str):
        return await self._spanned("call.hangup", {"hangup.reason": reason}, lambda: self._inner.hangup(reason))
