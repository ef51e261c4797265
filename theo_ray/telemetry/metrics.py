"""Theo's metrics: every name, unit, tag and bucket in one place, recorded through
`ray.util.metrics` so they reach Ray's Prometheus endpoint on each node (and so the Ray
dashboard's Grafana and Ray's service-discovery file for Prometheus).

Ray exports each one with the prefix `ray_` (`theo_calls_active` is scraped as
`ray_theo_calls_active`) and adds its own labels (NodeAddress, WorkerId, SessionName).
Histogram buckets are chosen so the seed's targets sit on a bucket edge (P95 readable with
`histogram_quantile`): barge-in reaction 100 ms, Theo's overhead 30 ms, first audio
1.5 s / 2 s, dead air 2 s. Ray records a histogram's sum from bucket midpoints, so
`_sum / _count` is approximate; use the buckets.

Outside a Ray worker (fast tests, the health server's own process metrics) a `TheoMetrics`
records into memory instead, readable with `value()`.
"""

from __future__ import annotations

import threading
from typing import Literal

import msgspec

Kind = Literal["counter", "gauge", "histogram"]

# Milliseconds: fine under 100 ms (barge-in, overhead), then the turn's stages up to 15 s.
LATENCY_MS = (5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500, 2000,
              2500, 3000, 4000, 5000, 7500, 10000, 15000)
MOS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.4, 4.6)
JITTER_MS = (1, 2, 5, 10, 20, 30, 50, 80, 120, 200)
LOSS_RATIO = (0.0001, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
CALL_SECONDS = (5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800)

# The turn's stages of `theo_turn_stage_ms` (tag `stage`), each from a TurnRecord.
STAGES = ("endpointing", "stt_final", "llm_first_token", "llm_first_sentence", "tts_first_chunk",
          "first_audio", "first_content_audio")
DEAD_AIR_S = 2.0  # a turn whose first audio (a filler counts) came later than this is dead air
BREAKER_POSITION = {"closed": 0, "half_open": 1, "open": 2}


class MetricDef(msgspec.Struct, frozen=True):
    name: str
    kind: Kind
    unit: str
    description: str
    tags: tuple[str, ...] = ("plane",)
    buckets: tuple[float, ...] = ()


_P = ("plane",)  # the CallSupervisor's actor name ("call-supervisor" for `theo up`'s plane)
DEFINITIONS: dict[str, MetricDef] = {d.name: d for d in (
    # Calls (CallSupervisor).
    MetricDef("theo_calls_active", "gauge", "calls", "calls in progress on the plane"),
    MetricDef("theo_calls_opened_total", "counter", "calls", "calls answered (a CallActor took them)"),
    MetricDef("theo_calls_closed_total", "counter", "calls", "calls ended, by end reason and outcome",
              (*_P, "reason", "outcome")),
    MetricDef("theo_call_open_failures_total", "counter", "calls", "calls the supervisor failed to open"),
    MetricDef("theo_call_duration_seconds", "histogram", "s", "call length, answered to ended", _P, CALL_SECONDS),
    MetricDef("theo_warm_pool_size", "gauge", "actors", "prepared CallActors waiting for a call"),
    MetricDef("theo_calls_refused_overload_total", "counter", "calls",
              "new calls refused by call.overload, by rule (cpu, pool)", (*_P, "rule")),
    MetricDef("theo_node_cpu_percent", "gauge", "percent", "the overload guard's moving mean of the node's CPU"),
    MetricDef("theo_failovers_total", "counter", "calls", "dead CallActors replaced mid-call, by result (ok, failed)",
              (*_P, "result")),
    MetricDef("theo_orphans_reaped_total", "counter", "calls",
              "orphans ended by the reaper: kind=call (no dialog) or dialog (no CallActor)", (*_P, "kind")),
    MetricDef("theo_breaker_state", "gauge", "position",
              "circuit breaker position: 0 closed, 1 half-open, 2 open (model: llm, llm_fallback, tts)",
              (*_P, "model")),
    # Turns (from each TurnRecord at turn end, reported by the CallActor).
    MetricDef("theo_turns_total", "counter", "turns", "caller turns answered, by endpoint rule", (*_P, "rule")),
    MetricDef("theo_turn_stage_ms", "histogram", "ms",
              "a turn's stage: endpointing wait, STT final, LLM first token / first sentence, TTS first chunk, "
              "first audio (a filler counts), first content audio (the reply's own words); from the caller's "
              "speech end except the model stages (from the stage before)", (*_P, "stage"), LATENCY_MS),
    MetricDef("theo_barge_ins_total", "counter", "events", "caller speech over the agent, by verdict",
              (*_P, "verdict")),
    MetricDef("theo_barge_in_reaction_ms", "histogram", "ms", "caller onset -> agent playout paused", _P, LATENCY_MS),
    MetricDef("theo_fillers_total", "counter", "events", "fillers played while a reply was prepared"),
    MetricDef("theo_repeat_requests_total", "counter", "events", "turns answered with 'could you repeat?'"),
    MetricDef("theo_readbacks_total", "counter", "events", "dictated numbers read back for confirmation (a digit heard unsure)"),
    MetricDef("theo_silence_prompts_total", "counter", "events", "reprompts/goodbyes said because nobody spoke"),
    MetricDef("theo_dead_air_total", "counter", "turns", f"turns whose first audio came over {DEAD_AIR_S:g} s late"),
    MetricDef("theo_model_timeouts_total", "counter", "events", "model streams cut for going quiet, by stage",
              (*_P, "stage")),
    MetricDef("theo_llm_fallbacks_total", "counter", "replies", "replies answered by the fallback language model"),
    # Media, per call at its end (from the CallActor's MediaStats).
    MetricDef("theo_call_mos", "histogram", "MOS", "inbound MOS estimate (simplified G.107) per call", _P, MOS),
    MetricDef("theo_call_jitter_ms", "histogram", "ms", "inbound RFC 3550 jitter, call mean", _P, JITTER_MS),
    MetricDef("theo_call_loss_ratio", "histogram", "ratio", "inbound packets lost / expected per call", _P,
              LOSS_RATIO),
    # SIP edge (each gateway shard).
    MetricDef("theo_sip_answer_ms", "histogram", "ms", "INVITE received -> 200 OK sent", ("shard",), LATENCY_MS),
    MetricDef("theo_sip_refused_total", "counter", "requests", "INVITEs and requests refused, by reason",
              ("shard", "reason")),
    MetricDef("theo_sip_calls_active", "gauge", "calls", "dialogs the shard holds", ("shard",)),
    # Health (the health server's own view, also on its /metrics).
    MetricDef("theo_ready", "gauge", "bool", "1 when /ready answers 200", ("check",)),
)}

_lock = threading.Lock()
_ray_metrics: dict[str, object] = {}


def _ray_metric(definition: MetricDef):
    with _lock:
        metric = _ray_metrics.get(definition.name)
        if metric is None:
            from ray.util import metrics as ray_metrics

            common = {"description": f"{definition.description} [{definition.unit}]", "tag_keys": definition.tags}
            if definition.kind == "counter":
                metric = ray_metrics.Counter(definition.name, **common)
            elif definition.kind == "gauge":
                metric = ray_metrics.Gauge(definition.name, **common)
            else:
                metric = ray_metrics.Histogram(definition.name, boundaries=list(definition.buckets), **common)
            _ray_metrics[definition.name] = metric
        return metric


def _in_ray_worker() -> bool:
    try:
        import ray

        return ray.is_initialized()
    except Exception:  # noqa: BLE001 - no Ray: memory
        return False


class TheoMetrics:
    """Records Theo's metrics with `default_tags` (e.g. {"plane": ...}) added to each call.

    `backend="ray"` records through ray.util.metrics, "memory" into `self.memory`, "auto"
    picks Ray inside a Ray worker; `enabled=False` records nothing. A name not in
    DEFINITIONS or a missing tag raises (a typo must not pass silently)."""

    def __init__(self, default_tags: dict[str, str] | None = None, backend: str = "auto", enabled: bool = True) -> None:
        self.default_tags = dict(default_tags or {})
        self.enabled = enabled
        self.use_ray = backend == "ray" or (backend == "auto" and _in_ray_worker())
        # memory: (name, sorted tag items) -> value (counters, gauges) or list of observations
        self.memory: dict[tuple[str, tuple[tuple[str, str], ...]], float | list[float]] = {}

    def _tags(self, definition: MetricDef, tags: dict[str, str]) -> dict[str, str]:
        merged = {k: str(v) for k, v in {**self.default_tags, **tags}.items() if k in definition.tags}
        missing = set(definition.tags) - set(merged)
        if missing:
            raise KeyError(f"{definition.name}: tags {sorted(missing)} not given")
        return merged

    def _record(self, kind: Kind, name: str, value: float, tags: dict[str, str]) -> None:
        if not self.enabled:
            return
        definition = DEFINITIONS[name]
        if definition.kind != kind:
            raise TypeError(f"{name} is a {definition.kind}, not a {kind}")
        merged = self._tags(definition, tags)
        if self.use_ray:
            metric = _ray_metric(definition)
            if kind == "counter":
                metric.inc(value, tags=merged)
            elif kind == "gauge":
                metric.set(value, tags=merged)
            else:
                metric.observe(value, tags=merged)
            return
        key = (name, tuple(sorted(merged.items())))
        if kind == "counter":
            self.memory[key] = float(self.memory.get(key, 0.0)) + value  # type: ignore[arg-type]
        elif kind == "gauge":
            self.memory[key] = float(value)
        else:
            self.memory.setdefault(key, []).append(float(value))  # type: ignore[union-attr]

    def inc(self, name: str, value: float = 1.0, **tags: str) -> None:
        if value > 0:
            self._record("counter", name, value, tags)

    def set(self, name: str, value: float, **tags: str) -> None:
        self._record("gauge", name, value, tags)

    def observe(self, name: str, value: float | None, **tags: str) -> None:
        if value is not None:
            self._record("histogram", name, value, tags)

    def value(self, name: str, **tags: str):
        """Memory backend: the counter/gauge value or the histogram's observations (summed
        over the tags not given)."""
        found: list = []
        for (metric, items), value in self.memory.items():
            if metric == name and all(dict(items).get(k) == v for k, v in tags.items()):
                found.append(value)
        if not found:
            return None
        if isinstance(found[0], list):
            return [v for values in found for v in values]
        return sum(found) if DEFINITIONS[name].kind == "counter" else found[-1]


class DeltaCounter:
    """Turns a running total someone else keeps (a stats field) into counter increments."""

    def __init__(self) -> None:
        self._last: dict[tuple, float] = {}

    def delta(self, key: tuple, total: float) -> float:
        last = self._last.get(key)
        self._last[key] = total
        if last is None:
            return total
        return total - last if total >= last else total  # a reset (restart) counts from 0


async def sample_forever(sample, read, interval_s: float, what: str) -> None:
    """Every `interval_s`, `sample(await read())`; a failed round is logged, never raised
    (metrics must not stop the actor that keeps them)."""
    import asyncio
    import logging

    log = logging.getLogger("theo.metrics")
    while True:
        try:
            sample(await read())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.warning("%s metrics sample failed: %s", what, exc)
        await asyncio.sleep(interval_s)
