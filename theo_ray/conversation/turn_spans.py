"""TurnTracer: the call's one OpenTelemetry trace — a root span for the call, a span per
turn split into its segments, and barge-in spans.

Turn segments are recorded as monotonic instants while the turn runs (cheap, no span
bookkeeping on the media path) and turned into spans when the turn ends, so a turn's
latency splits into endpointing wait, STT final, LLM first token / first sentence, TTS
first chunk and first RTP packet. Deployment spans join the same trace through the
TraceContext carried by every request.
"""

from __future__ import annotations

import time

from opentelemetry import trace

from theo_ray.conversation.records import BargeInRecord, CallRecord, TurnRecord
from theo_ray.messages import TraceContext
from theo_ray.telemetry.tracing import configure_tracing, extract, include_transcripts, inject, tracer


class TurnTracer:
    def __init__(self, session_id: str, parent: TraceContext | None = None, attributes: dict | None = None) -> None:
        configure_tracing("theo-call")
        self._offset_ns = time.time_ns() - int(time.monotonic() * 1e9)
        self.span = tracer().start_span(
            "call", context=extract(parent), attributes={"theo.session_id": session_id, **(attributes or {})}
        )
        ctx = self.span.get_span_context()
        self.trace_id = f"{ctx.trace_id:032x}" if ctx.is_valid else ""
        self._ctx = trace.set_span_in_context(self.span)

    def _ns(self, monotonic: float) -> int:
        return int(monotonic * 1e9) + self._offset_ns

    def context(self) -> TraceContext:
        return inject(self.span)

    def _segment(self, name: str, start: float, end: float, parent_ctx, **attributes) -> None:
        if start and end and end >= start:
            span = tracer().start_span(name, context=parent_ctx, start_time=self._ns(start), attributes=attributes)
            span.end(end_time=self._ns(end))

    def turn_done(self, turn: TurnRecord) -> None:
        start = turn.speech_end_at or turn.end_of_turn_at
        end = turn.drained_at or turn.first_rtp_at or turn.stt_final_at or start
        if not start:
            return
        span = tracer().start_span(
            "turn", context=self._ctx, start_time=self._ns(start),
            attributes={"turn.index": turn.index, "turn.interrupted": turn.interrupted,
                        "turn.endpoint_rule": turn.endpoint_rule, "turn.error": turn.error,
                        "stt.logprob": turn.caller_logprob, "llm.tokens": turn.reply_tokens,
                        "llm.model": turn.llm_model, "turn.asked_to_repeat": turn.asked_to_repeat,
                        "turn.read_back": bool(turn.read_back)},
        )
        if include_transcripts():  # opt-in: a transcript may hold a CPF or a card number
            span.set_attribute("turn.caller_text", turn.caller_text)
            span.set_attribute("turn.agent_text", turn.agent_text)
            span.set_attribute("turn.heard_text", turn.heard_text)
        ctx = trace.set_span_in_context(span)
        self._segment("endpointing.wait", turn.speech_end_at, turn.end_of_turn_at, ctx, rule=turn.endpoint_rule)
        self._segment("stt.final", turn.end_of_turn_at, turn.stt_final_at, ctx, compute_ms=turn.stt_ms)
        self._segment("llm.first_token", turn.stt_final_at, turn.llm_first_token_at, ctx)
        self._segment("llm.first_sentence", turn.stt_final_at, turn.llm_first_sentence_at, ctx)
        self._segment("tts.first_chunk", turn.llm_first_sentence_at, turn.tts_first_chunk_at, ctx)
        self._segment("rtp.first_packet", turn.end_of_turn_at, turn.first_rtp_at, ctx)
        for tool in turn.tools:
            self._segment(f"tool.{tool.call.name}", tool.drained_at, tool.executed_at, ctx, ok=tool.ok)
        span.end(end_time=self._ns(max(end, start)))

    def barge_in_started(self, barge: BargeInRecord) -> None:
        pass  # the span is written when the verdict is known (barge_in_ended)

    def barge_in_ended(self, barge: BargeInRecord) -> None:
        self._segment(
            "barge_in", barge.onset_at, barge.decided_at or barge.paused_at, self._ctx,
            verdict=barge.verdict, paused_after_ms=(barge.paused_at - barge.onset_at) * 1000.0, heard=barge.heard,
        )

    def end_call(self, record: CallRecord) -> None:
        self.span.set_attribute("call.end_reason", record.end_reason)
        self.span.set_attribute("call.turns", len(record.turns))
        self.span.set_attribute("call.transferred_to", record.transferred_to)
        self.span.end()
