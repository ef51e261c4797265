"""From Theo's call record to call-data documents: one pure function, `build_call_documents`.

Owns the translation of a finished call (the turn machine's `CallRecord` with its
`TurnRecord`s, `BargeInRecord`s and tool executions, plus the RTP session's `MediaStats`)
into a `CallDocument` and its `TurnDocument`s. It reads its inputs through the structural
Protocols below (the attributes it uses), so this package needs neither the conversation
nor the media layer; the real records satisfy them as they are.

The records' instants are monotonic seconds (0.0 = did not happen); the caller passes the
wall-clock time the call ended (`time.time()` when the record was closed) and every
instant is placed relative to the record's own `ended_at`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, Protocol

from theo_ray.calldata.documents import (
    BargeInDoc, CallDocument, CallDocuments, ConversationMetrics, MediaQuality, StageCount, StageTimings,
    ToolCallDoc, TurnDocument, call_doc_id, turn_doc_id,
)
from theo_ray.calldata.redaction import NO_REDACTION, Redactor

# End reasons that mean Theo (not the conversation) ended the call.
SLOW_RESPONSE_MS = 2000.0  # a caller left this long without a sound after their turn: GAP 16's "silence > 2 s"
FAILURE_REASONS = frozenset({"gateway_crash", "call_actor_lost", "orphaned", "ack_timeout", "gateway_shutdown", "error"})


class ToolCallLike(Protocol):
    name: str
    arguments: dict[str, Any]


class ToolExecutionLike(Protocol):
    call: ToolCallLike
    drained_at: float
    executed_at: float
    ok: bool
    detail: str


class BargeInLike(Protocol):
    onset_at: float
    paused_at: float
    verdict: str
    decided_at: float
    heard: str
    caller_text: str


class TurnRecordLike(Protocol):
    index: int
    caller_text: str
    agent_text: str
    heard_text: str
    interrupted: bool
    endpoint_rule: str
    endpoint_reason: str
    speech_end_at: float
    end_of_turn_at: float
    stt_final_at: float
    llm_first_token_at: float
    llm_first_sentence_at: float
    tts_first_chunk_at: float
    first_audio_enqueued_at: float
    first_rtp_at: float
    filler_at: float
    filler_text: str
    stt_ms: float
    reply_tokens: int
    reply_loop: str
    tools: Sequence[ToolExecutionLike]
    error: str


class CallRecordLike(Protocol):
    session_id: str
    caller_id: str
    started_at: float
    ended_at: float
    end_reason: str
    trace_id: str
    greeting_text: str
    turns: Sequence[TurnRecordLike]
    barge_ins: Sequence[BargeInLike]
    backchannels_played: int
    fillers_played: int
    silence_prompts: int
    early_pauses: int
    transferred_to: str
    transfer_reason: str
    errors: Sequence[str]
    model_timeouts: dict[str, int]


class MediaStatsLike(Protocol):
    codec: str
    mos: float | None
    jitter_mean_ms: float
    expected: int
    lost: int
    packets_in: int
    packets_out: int
    concealed_frames: int
    rtt_ms: float | None
    remote_fraction_lost: float | None
    remote_jitter_ms: float | None
    send_interval_error_p99_ms: float


def iso_utc(wall: float) -> str:
    return dt.datetime.fromtimestamp(wall, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(end: float, start: float) -> float | None:
    return round((end - start) * 1000.0, 1) if end and start and end >= start else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def stage_timings(turn: TurnRecordLike) -> StageTimings:
    return StageTimings(
        endpointing_ms=_ms(turn.end_of_turn_at, turn.speech_end_at),
        stt_ms=_ms(turn.stt_final_at, turn.end_of_turn_at),
        stt_compute_ms=round(turn.stt_ms, 1) if turn.stt_ms else None,
        llm_first_token_ms=_ms(turn.llm_first_token_at, turn.stt_final_at),
        llm_first_sentence_ms=_ms(turn.llm_first_sentence_at, turn.stt_final_at),
        tts_first_chunk_ms=_ms(turn.tts_first_chunk_at, turn.llm_first_sentence_at),
        first_rtp_ms=_ms(turn.first_rtp_at, turn.end_of_turn_at),
        response_ms=_ms(turn.first_rtp_at, turn.speech_end_at or turn.end_of_turn_at),
        filler_ms=_ms(turn.filler_at, turn.speech_end_at or turn.end_of_turn_at),
    )


def _barge_ins_by_turn(record: CallRecordLike) -> dict[int, list[BargeInLike]]:
    """Each barge-in belongs to the reply that was playing: the last turn whose end of turn
    came before the caller's onset."""
    starts = sorted((t.end_of_turn_at or t.speech_end_at, t.index) for t in record.turns)
    out: dict[int, list[BargeInLike]] = {}
    for barge in record.barge_ins:
        owner = None
        for at, index in starts:
            if at and at <= barge.onset_at:
                owner = index
        if owner is not None:
            out.setdefault(owner, []).append(barge)
    return out


def _verdict(barges: list[BargeInLike]) -> str:
    verdicts = [b.verdict for b in barges if b.verdict]
    if "interruption" in verdicts:
        return "interruption"
    return verdicts[-1] if verdicts else ""


def _heard(turn: TurnRecordLike) -> str:
    # Interrupted: what played before the cut. Otherwise the reply drained: all of it was heard.
    return turn.heard_text if turn.interrupted else turn.agent_text


def _turn_document(record: CallRecordLike, turn: TurnRecordLike, barges: list[BargeInLike],
                   wall, redact: Redactor) -> TurnDocument:
    instant = turn.speech_end_at or turn.end_of_turn_at
    return TurnDocument(
        doc_id=turn_doc_id(record.session_id, turn.index),
        session_id=record.session_id,
        trace_id=record.trace_id,
        turn_index=turn.index,
        timestamp=iso_utc(wall(instant)),
        caller_id=record.caller_id,
        caller_text=redact(turn.caller_text),
        agent_text_heard=redact(_heard(turn)),
        agent_text_generated=redact(turn.agent_text),
        interrupted=turn.interrupted,
        endpoint_rule=turn.endpoint_rule,
        endpoint_reason=turn.endpoint_reason,
        barge_in_verdict=_verdict(barges),
        barge_ins=[
            BargeInDoc(verdict=b.verdict, reaction_ms=_ms(b.paused_at, b.onset_at), decided_ms=_ms(b.decided_at, b.onset_at),
                       heard=redact(b.heard), caller_text=redact(b.caller_text))
            for b in barges
        ],
        timings=stage_timings(turn),
        filler_text=turn.filler_text,
        reply_tokens=turn.reply_tokens,
        llm_model=getattr(turn, "llm_model", ""),  # newer records name the model that answered
        reply_loop=turn.reply_loop,
        tool_calls=[
            ToolCallDoc(name=t.call.name, arguments_json=redact(json.dumps(t.call.arguments, ensure_ascii=False, sort_keys=True)),
                        ok=t.ok, detail=redact(t.detail), wait_ms=_ms(t.executed_at, t.drained_at))
            for t in turn.tools
        ],
        error=turn.error,
    )


def media_quality(media: MediaStatsLike) -> MediaQuality:
    return MediaQuality(
        codec=media.codec,
        mos=media.mos,
        jitter_ms=round(media.jitter_mean_ms, 2),
        loss_fraction=round(media.lost / media.expected, 4) if media.expected > 0 else None,
        packets_in=media.packets_in,
        packets_out=media.packets_out,
        lost=max(0, media.lost),
        concealed_frames=media.concealed_frames,
        rtt_ms=media.rtt_ms,
        remote_loss_fraction=media.remote_fraction_lost,
        remote_jitter_ms=media.remote_jitter_ms,
        send_interval_error_p99_ms=media.send_interval_error_p99_ms,
    )


def call_outcome(record: CallRecordLike) -> str:
    if record.transferred_to:
        return "transferred"
    if record.end_reason in FAILURE_REASONS:
        return "failed"
    if not any(t.caller_text for t in record.turns):
        return "abandoned"
    return "completed"


def build_call_documents(
    record: CallRecordLike,
    *,
    ended_wall_time: float,
    media: MediaStatsLike | None = None,
    redactor: Redactor = NO_REDACTION,
    recording_path: str = "",
    recording_duration_ms: float | None = None,
    node: str = "",
) -> CallDocuments:
    """The call's summary and per-turn documents. `ended_wall_time` is `time.time()` at the
    moment the record's `ended_at` was taken (the call's end); pure otherwise."""
    ended_mono = record.ended_at or record.started_at

    def wall(mono: float) -> float:
        return ended_wall_time - (ended_mono - mono) if mono and ended_mono else ended_wall_time

    turns_in_order = sorted(record.turns, key=lambda t: t.index)
    barges = _barge_ins_by_turn(record)
    turns = [_turn_document(record, t, barges.get(t.index, []), wall, redactor) for t in turns_in_order]
    responses = [d.timings.response_ms for d in turns if d.timings.response_ms is not None]
    verdicts = [b.verdict for b in record.barge_ins]
    interruptions = verdicts.count("interruption")
    lines = [f"Theo: {redactor(record.greeting_text)}"] if record.greeting_text else []
    for d in turns:
        if d.caller_text:
            lines.append(f"Caller: {d.caller_text}")
        if d.agent_text_heard:
            lines.append(f"Theo: {d.agent_text_heard}")
    metrics = ConversationMetrics(
        turns=len(turns),
        barge_ins=interruptions,
        barge_in_rate=round(interruptions / len(turns), 4) if turns else 0.0,
        backchannels=verdicts.count("backchannel"),
        backchannels_played=record.backchannels_played,
        fillers_played=record.fillers_played,
        silence_prompts=record.silence_prompts,
        early_pauses=record.early_pauses,
        model_timeouts=sum(record.model_timeouts.values()),
        llm_fallbacks=getattr(record, "llm_fallbacks", 0),
        reply_loops=sum(1 for t in turns if t.reply_loop),
        tool_calls=sum(len(t.tool_calls) for t in turns),
        errors=len(record.errors) + sum(1 for t in turns if t.error),
        response_ms_p50=_percentile(responses, 0.5),
        response_ms_p95=_percentile(responses, 0.95),
        response_ms_max=max(responses) if responses else None,
        slow_responses=sum(1 for r in responses if r > SLOW_RESPONSE_MS),
        repeat_requests=getattr(record, "repeat_requests", 0),
        repeat_rate=round(getattr(record, "repeat_requests", 0) / len(turns), 4) if turns else 0.0,
        readbacks=getattr(record, "readbacks", 0),
    )
    outcome = call_outcome(record)
    metrics.task_completed = outcome in ("completed", "transferred") and not record.model_timeouts and all(
        not t.error for t in turns
    )
    metrics.turns_to_resolution = len(turns) if metrics.task_completed else None
    started = wall(record.started_at) if record.started_at else ended_wall_time
    call = CallDocument(
        doc_id=call_doc_id(record.session_id),
        session_id=record.session_id,
        trace_id=record.trace_id,
        timestamp=iso_utc(ended_wall_time),
        started_at=iso_utc(started),
        ended_at=iso_utc(ended_wall_time),
        duration_ms=round(max(0.0, ended_wall_time - started) * 1000.0, 1),
        caller_id=record.caller_id,
        outcome=outcome,  # type: ignore[arg-type]
        end_reason=record.end_reason,
        transferred_to=record.transferred_to,
        transfer_reason=redactor(record.transfer_reason),
        greeting_text=record.greeting_text,
        transcript="\n".join(lines),
        metrics=metrics,
        model_timeouts=[StageCount(stage=k, count=v) for k, v in sorted(record.model_timeouts.items())],
        errors=[redactor(e) for e in record.errors],
        media=media_quality(media) if media is not None else None,
        recording_path=recording_path,
        recording_duration_ms=recording_duration_ms if recording_path else None,
        node=node,
    )
    return CallDocuments(call=call, turns=turns)
