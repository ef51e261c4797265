"""Writes theo-dashboard.json (Grafana, import as is: Dashboards -> New -> Import), whose
queries read Theo's metrics on Ray's export (prefix ray_). `python observability/grafana/build_dashboard.py`."""

from __future__ import annotations

import json
from pathlib import Path

DS = {"type": "prometheus", "uid": "${datasource}"}
P = 'plane=~"$plane"'


def q95(metric: str, extra: str = "", by: str = "", q: float = 0.95) -> str:
    labels = ",".join(x for x in (P, extra) if x)
    return f"histogram_quantile({q}, sum by (le{', ' + by if by else ''}) (rate({metric}_bucket{{{labels}}}[$__rate_interval])))"


PANELS = [
    ("Calls active", "timeseries", [(f"sum by (plane) (ray_theo_calls_active{{{P}}})", "{{plane}}")], "short"),
    ("Calls ended / s by outcome", "timeseries",
     [(f"sum by (outcome) (rate(ray_theo_calls_closed_total{{{P}}}[$__rate_interval]))", "{{outcome}}")], "ops"),
    ("First audio (a filler counts) / first content audio", "timeseries",
     [(q95("ray_theo_turn_stage_ms", 'stage="first_audio"', q=0.5), "first audio p50"),
      (q95("ray_theo_turn_stage_ms", 'stage="first_audio"'), "first audio p95"),
      (q95("ray_theo_turn_stage_ms", 'stage="first_content_audio"'), "content p95")], "ms"),
    ("Turn stages p95", "timeseries", [(q95("ray_theo_turn_stage_ms", by="stage"), "{{stage}}")], "ms"),
    ("Barge-ins / s by verdict", "timeseries",
     [(f"sum by (verdict) (rate(ray_theo_barge_ins_total{{{P}}}[$__rate_interval]))", "{{verdict}}")], "ops"),
    ("Barge-in reaction p95", "timeseries", [(q95("ray_theo_barge_in_reaction_ms"), "p95")], "ms"),
    ("Dead air, silence prompts, fillers, repeats (per turn)", "timeseries",
     [(f"sum(rate(ray_theo_{m}_total{{{P}}}[$__rate_interval])) / clamp_min(sum(rate(ray_theo_turns_total{{{P}}}"
       f"[$__rate_interval])), 1e-9)", m) for m in ("dead_air", "silence_prompts", "fillers", "repeat_requests")],
     "percentunit"),
    ("Call MOS p50 / jitter p95 / loss p95", "timeseries",
     [(q95("ray_theo_call_mos", q=0.5), "MOS p50"), (q95("ray_theo_call_jitter_ms"), "jitter ms p95"),
      (q95("ray_theo_call_loss_ratio"), "loss p95")], "short"),
    ("Circuit breakers (0 closed, 1 half-open, 2 open)", "timeseries",
     [(f"max by (model) (ray_theo_breaker_state{{{P}}})", "{{model}}")], "short"),
    ("Warm CallActors", "timeseries", [(f"sum by (plane) (ray_theo_warm_pool_size{{{P}}})", "{{plane}}")], "short"),
    ("SIP INVITE -> 200 OK p95 / refusals", "timeseries",
     [("histogram_quantile(0.95, sum by (le) (rate(ray_theo_sip_answer_ms_bucket[$__rate_interval])))", "answer p95 ms"),
      ("sum by (reason) (rate(ray_theo_sip_refused_total[$__rate_interval]))", "refused {{reason}} /s")], "short"),
    ("Model timeouts, LLM fallbacks, failovers, orphans", "timeseries",
     [(f"sum by (stage) (rate(ray_theo_model_timeouts_total{{{P}}}[$__rate_interval]))", "timeout {{stage}}"),
      (f"sum(rate(ray_theo_llm_fallbacks_total{{{P}}}[$__rate_interval]))", "llm fallback"),
      (f"sum by (result) (rate(ray_theo_failovers_total{{{P}}}[$__rate_interval]))", "failover {{result}}"),
      (f"sum by (kind) (rate(ray_theo_orphans_reaped_total{{{P}}}[$__rate_interval]))", "orphan {{kind}}")], "ops"),
]


def dashboard() -> dict:
    panels = []
    for i, (title, kind, targets, unit) in enumerate(PANELS):
        panels.append({
            "id": i + 1, "title": title, "type": kind, "datasource": DS,
            "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(65 + j), "datasource": DS, "expr": expr, "legendFormat": legend}
                        for j, (expr, legend) in enumerate(targets)],
        })
    return {
        "title": "Theo", "uid": "theo-calls", "schemaVersion": 39, "version": 1, "editable": True,
        "time": {"from": "now-1h", "to": "now"}, "refresh": "30s", "tags": ["theo", "ray"],
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
            {"name": "plane", "type": "query", "datasource": DS, "label": "plane", "includeAll": True,
             "multi": True, "current": {"text": "All", "value": "$__all"}, "allValue": ".*",
             "query": {"query": "label_values(ray_theo_calls_active, plane)", "refId": "plane"}, "refresh": 2},
        ]},
        "panels": panels,
    }


if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "theo-dashboard.json"
    out.write_text(json.dumps(dashboard(), indent=2) + "\n")
