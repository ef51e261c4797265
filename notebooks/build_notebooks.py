"""Writes call_traces.ipynb and conversation_quality.ipynb (no outputs) from the cells
below: `python notebooks/build_notebooks.py`. The notebooks read the embedded files:
THEO_TRACE_DIR (span JSON lines, default ./out/traces) and THEO_CALL_LOG (the call-data
JSON-lines log, default ./out/call-data/calls.jsonl)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

LOAD_SPANS = '''import json, os, glob
from collections import defaultdict
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

TRACE_DIR = os.environ.get("THEO_TRACE_DIR", "out/traces")
spans = []
for path in sorted(glob.glob(os.path.join(TRACE_DIR, "**", "*.jsonl"), recursive=True)):
    with open(path, encoding="utf-8") as f:
        spans += [json.loads(line) for line in f if line.strip()]
traces = defaultdict(list)  # every process's file, gathered by the call's trace id
for s in spans:
    traces[s["trace_id"]].append(s)
calls = {t: ss for t, ss in traces.items() if any(s["name"] == "call" for s in ss)}
print(f"{len(spans)} spans in {len(traces)} traces, {len(calls)} calls, from {TRACE_DIR}")
assert calls, "no call trace found: run a call (theo demo) or point THEO_TRACE_DIR at a traces folder"'''

WATERFALL = '''trace_id = os.environ.get("THEO_NOTEBOOK_TRACE_ID") or max(
    calls, key=lambda t: max(s["start_ns"] for s in calls[t]))
call_spans = sorted(calls[trace_id], key=lambda s: s["start_ns"])
t0 = min(s["start_ns"] for s in call_spans)
fig, ax = plt.subplots(figsize=(11, 0.3 * len(call_spans) + 1))
for row, s in enumerate(call_spans):
    start, length = (s["start_ns"] - t0) / 1e9, max((s["end_ns"] - s["start_ns"]) / 1e9, 0.005)
    ax.barh(row, length, left=start, color="C%d" % (hash(s["service"]) % 10))
    ax.text(start, row, f" {s['service']}:{s['name']} {length * 1000:.0f} ms", va="center", fontsize=7)
ax.invert_yaxis(); ax.set_yticks([]); ax.set_xlabel("seconds since the INVITE")
ax.set_title(f"call trace {trace_id}")
plt.show()
for s in call_spans:
    print(f"{(s['start_ns'] - t0) / 1e6:9.0f} ms  {(s['end_ns'] - s['start_ns']) / 1e6:8.0f} ms  {s['service']:<18} {s['name']}")'''

STAGES = '''STAGES = ["endpointing.wait", "stt.final", "llm.first_token", "llm.first_sentence", "tts.first_chunk", "rtp.first_packet"]
per_stage = defaultdict(list)
for ss in calls.values():
    for s in ss:
        if s["name"] in STAGES:
            per_stage[s["name"]].append((s["end_ns"] - s["start_ns"]) / 1e6)

def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]

print(f"{'stage':<20}{'n':>5}{'p50 ms':>10}{'p95 ms':>10}")
for stage in STAGES:
    v = per_stage.get(stage, [])
    if v:
        print(f"{stage:<20}{len(v):>5}{pct(v, .5):>10.0f}{pct(v, .95):>10.0f}")
present = [s for s in STAGES if per_stage.get(s)]
fig, ax = plt.subplots(figsize=(9, 3))
ax.bar(present, [pct(per_stage[s], .5) for s in present], label="p50")
ax.bar(present, [pct(per_stage[s], .95) - pct(per_stage[s], .5) for s in present],
       bottom=[pct(per_stage[s], .5) for s in present], alpha=.4, label="p95")
ax.set_ylabel("ms"); ax.legend(); ax.tick_params(axis="x", labelrotation=20)
plt.show()'''

DISTRIBUTIONS = '''first_audio = per_stage.get("rtp.first_packet", [])
barge = [s["attributes"].get("paused_after_ms") for ss in calls.values() for s in ss if s["name"] == "barge_in"]
barge = [b for b in barge if b is not None]
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
axes[0].hist(first_audio or [0], bins=20); axes[0].set_title(f"end of turn -> first reply packet (n={len(first_audio)})")
axes[0].set_xlabel("ms")
axes[1].hist(barge or [0], bins=20); axes[1].set_title(f"barge-in reaction (n={len(barge)})"); axes[1].set_xlabel("ms")
plt.show()'''

ELSEWHERE = '''## The same from Tempo or Prometheus

- **Tempo / Jaeger**: with `telemetry.otlp_endpoint` set, every span above also goes there over
  OTLP/HTTP; a call's trace id is in its call-data document (`trace_id`). Tempo's HTTP API:
  `GET /api/traces/<trace_id>` returns the same spans (OTLP JSON: `batches[].scopeSpans[].spans[]`).
- **Prometheus**: the stage percentiles without traces, from Theo's histograms on Ray's metrics
  export: `histogram_quantile(0.95, sum by (le, stage) (rate(ray_theo_turn_stage_ms_bucket[5m])))`.'''

LOAD_CALLS = '''import json, os, statistics
from collections import Counter
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

CALL_LOG = os.environ.get("THEO_CALL_LOG", "out/call-data/calls.jsonl")
docs = [json.loads(line) for line in open(CALL_LOG, encoding="utf-8") if line.strip()]
calls = sorted((d for d in docs if d["kind"] == "call"), key=lambda d: d["started_at"])
turns = [d for d in docs if d["kind"] == "turn"]
print(f"{len(calls)} calls, {len(turns)} turns from {CALL_LOG}")
assert calls, "no call in the log: run calls (theo demo, theo loadtest) or set THEO_CALL_LOG"'''

QUALITY = '''rows = []
for c in calls:
    m = c["metrics"]
    n = max(m["turns"], 1)
    rows.append({
        "session": c["session_id"], "started": c["started_at"], "outcome": c["outcome"], "turns": m["turns"],
        "barge_in_rate": m["barge_in_rate"], "repeat_rate": m.get("repeat_requests", 0) / n,
        "silence_prompts": m["silence_prompts"], "fillers": m["fillers_played"],
        "response_p50": m["response_ms_p50"], "mos": (c.get("media") or {}).get("mos"),
        "transfer_reason": c["transfer_reason"],
    })
print(f"{'session':<20}{'outcome':<12}{'turns':>6}{'barge':>7}{'repeat':>8}{'silence':>8}{'MOS':>6}")
for r in rows:
    print(f"{r['session'][:19]:<20}{r['outcome']:<12}{r['turns']:>6}{r['barge_in_rate']:>7.2f}"
          f"{r['repeat_rate']:>8.2f}{r['silence_prompts']:>8}{(r['mos'] or 0):>6.2f}")
outcomes = Counter(r["outcome"] for r in rows)
completed = [r for r in rows if r["outcome"] in ("completed", "transferred")]
print("outcomes:", dict(outcomes))
print("turns to resolution (completed/transferred): median",
      statistics.median([r["turns"] for r in completed]) if completed else "-")
print("transfer reasons:", dict(Counter(r["transfer_reason"] for r in rows if r["transfer_reason"])))'''

TRENDS = '''fig, axes = plt.subplots(1, 3, figsize=(13, 3))
x = range(len(rows))
axes[0].plot(x, [r["barge_in_rate"] for r in rows], marker="o", label="barge-in rate")
axes[0].plot(x, [r["repeat_rate"] for r in rows], marker="x", label="repeat rate")
axes[0].set_title("per call, in call order"); axes[0].legend()
axes[1].plot(x, [r["mos"] or 0 for r in rows], marker="o"); axes[1].set_title("MOS per call")
axes[2].bar(list(outcomes), list(outcomes.values())); axes[2].set_title("outcomes")
plt.show()
dead_air = [t for t in turns if (t["timings"].get("response_ms") or 0) > 2000]
print(f"turns with dead air > 2 s before the reply: {len(dead_air)} of {len(turns)}")'''


def main() -> None:
    traces = new_notebook(cells=[
        new_markdown_cell("# Call traces\nOne call's turn waterfall, P50/P95 per stage over many calls, "
                          "barge-in reaction and first-audio distributions — from Theo's span JSON lines "
                          "(`<paths.output_dir>/traces/*.jsonl`, one file per process, gathered here by trace id)."),
        new_code_cell(LOAD_SPANS), new_markdown_cell("## One call"), new_code_cell(WATERFALL),
        new_markdown_cell("## Stages over all calls"), new_code_cell(STAGES), new_code_cell(DISTRIBUTIONS),
        new_markdown_cell(ELSEWHERE),
    ])
    quality = new_notebook(cells=[
        new_markdown_cell("# Conversation quality\nPer call, from the call-data log "
                          "(`<paths.output_dir>/call-data/calls.jsonl`): outcome, turns to resolution, "
                          "barge-in and repeat rates, silence prompts, MOS, transfer reasons, and their trends."),
        new_code_cell(LOAD_CALLS), new_code_cell(QUALITY), new_code_cell(TRENDS),
        new_markdown_cell("Prometheus keeps the same over time: `rate(ray_theo_barge_ins_total[1h])`, "
                          "`rate(ray_theo_repeat_requests_total[1h]) / rate(ray_theo_turns_total[1h])`, "
                          "`sum by (outcome) (rate(ray_theo_calls_closed_total[1h]))`."),
    ])
    for nb in (traces, quality):
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(traces, HERE / "call_traces.ipynb")
    nbformat.write(quality, HERE / "conversation_quality.ipynb")


if __name__ == "__main__":
    main()
