"""PlaneMetrics: the CallSupervisor's side of Theo's metrics (definitions in
theo_ray.telemetry.metrics).

Why in the supervisor: a CallActor is killed when its call ends, and Ray's core worker
exports a process's metrics only every few seconds, so what a CallActor recorded in its
last seconds would be lost (and each call would be a new time series). CallActors report
each finished turn and each barge-in to their supervisor (`observe_turn` /
`observe_barge_in`, fire and forget); the supervisor records them, the call's totals and
media figures at its end, and samples its own counters every `metrics_interval_s`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from theo_ray.calldata.build import call_outcome, media_quality, stage_timings
from theo_ray.conversation.records import BargeInRecord, CallRecord, TurnRecord
from theo_ray.media.media_stats import MediaStats
from theo_ray.telemetry.metrics import (
    BREAKER_POSITION,
    DEAD_AIR_S,
    DeltaCounter,
    TheoMetrics,
    sample_forever,
)

log = logging.getLogger("theo.supervisor")


def _ms(end: float, start: float) -> float | None:
    return (end - start) * 1000.0 if end and start and end >= start else None


def turn_stages(turn: TurnRecord) -> dict[str, float | None]:
    """Each stage of `theo_turn_stage_ms` for one turn (None: did not happen)."""
    timings = stage_timings(turn)
    start = turn.speech_end_at or turn.end_of_turn_at
    audible = [t for t in (turn.filler_at, turn.first_rtp_at) if t]
    return {
        "endpointing": timings.endpointing_ms,
        "stt_final": timings.stt_ms,
        "llm_first_token": timings.llm_first_token_ms,
        "llm_first_sentence": timings.llm_first_sentence_ms,
        "tts_first_chunk": timings.tts_first_chunk_ms,
        "first_audio": _ms(min(audible), start) if audible else None,
        "first_content_audio": _ms(turn.first_rtp_at, start),
    }


class PlaneMetrics:
    def __init__(self, plane: str, enabled: bool = True, backend: str = "auto") -> None:
        self.metrics = TheoMetrics({"plane": plane}, backend=backend, enabled=enabled)
        self._deltas = DeltaCounter()

    # ------------------------------------------------------------ events

    def turn_done(self, turn: TurnRecord) -> None:
        m = self.metrics
        if turn.caller_text or turn.end_of_turn_at:
            m.inc("theo_turns_total", rule=turn.endpoint_rule or "none")
        if turn.read_back:  # as it happens: a run of read-backs shows while the calls go on
            m.inc("theo_readbacks_total")
        stages = turn_stages(turn)
        for stage, value in stages.items():
            m.observe("theo_turn_stage_ms", value, stage=stage)
        first = stages["first_audio"]
        if first is not None and first > DEAD_AIR_S * 1000.0:
            m.inc("theo_dead_air_total")

    def barge_in(self, barge: BargeInRecord) -> None:
        self.metrics.inc("theo_barge_ins_total", verdict=barge.verdict or "unconfirmed")
        self.metrics.observe("theo_barge_in_reaction_ms", _ms(barge.paused_at, barge.onset_at))

    def call_closed(self, reason: str, record: CallRecord | None, media: MediaStats | None) -> None:
        m = self.metrics
        m.inc("theo_calls_closed_total", reason=reason, outcome=call_outcome(record) if record else "lost")
        if record is not None:
            if record.started_at and record.ended_at >= record.started_at:
                m.observe("theo_call_duration_seconds", record.ended_at - record.started_at)
            m.inc("theo_fillers_total", record.fillers_played)
            m.inc("theo_repeat_requests_total", record.repeat_requests)
            m.inc("theo_silence_prompts_total", record.silence_prompts)
            m.inc("theo_llm_fallbacks_total", record.llm_fallbacks)
            for stage, count in record.model_timeouts.items():
                m.inc("theo_model_timeouts_total", count, stage=stage)
        if media is not None and media.packets_in:
            quality = media_quality(media)
            m.observe("theo_call_mos", quality.mos)
            m.observe("theo_call_jitter_ms", quality.jitter_ms)
            m.observe("theo_call_loss_ratio", quality.loss_fraction)

    # ------------------------------------------------------------ sampled

    def sample(self, stats) -> None:
        """Gauges and counter increments from the supervisor's SupervisorStats."""
        m, d = self.metrics, self._deltas.delta
        m.set("theo_calls_active", stats.active)
        m.set("theo_warm_pool_size", stats.warm)
        m.inc("theo_calls_opened_total", d(("opened",), stats.opened))
        m.inc("theo_call_open_failures_total", d(("open_failures",), stats.open_failures))
        m.inc("theo_failovers_total", d(("failovers",), stats.failovers), result="ok")
        m.inc("theo_failovers_total", d(("failover_failures",), stats.failover_failures), result="failed")
        m.inc("theo_orphans_reaped_total", d(("reaped",), stats.reaped), kind="call")
        m.inc("theo_orphans_reaped_total", d(("dialogs_reaped",), stats.dialogs_reaped), kind="dialog")
        m.set("theo_node_cpu_percent", stats.cpu_percent)
        for rule, count in stats.overload_refusals.items():
            m.inc("theo_calls_refused_overload_total", d(("overload", rule), count), rule=rule)
        for state in stats.breakers:
            m.set("theo_breaker_state", BREAKER_POSITION.get(state.position, 0), model=state.name)

    async def run(self, stats: Callable[[], Awaitable[object]], interval_s: float) -> None:
        await sample_forever(self.sample, stats, interval_s, "plane")
