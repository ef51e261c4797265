"""`theo demo` end to end, as the README's first command runs it: the real `theo` CLI in a
subprocess, joined (THEO__RAY__ADDRESS) to the session's Ray cluster, where the real model
deployments already run (faster-whisper, llama.cpp with the packaged Qwen2.5-Coder-1.5B,
Kokoro pf_dora). It starts the call plane, places the scripted demo call from the pjsua2
caller simulator over SIP and RTP on loopback, and prints the transcript, the per-turn
latency table and the call's quality figures.

Judged by what the caller heard (the caller side's Whisper on the recording): the agent
answered the invoice question with the demo company's fact, could be understood, and every
answered turn has a sentiment. The bounds are loose; `theo demo` prints the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from theo_ray.runtime.call_plane import GATEWAY_PREFIX, SUPERVISOR, stop_call_plane
from theo_ray.sip.free_port import free_sip_port

pytestmark = pytest.mark.slow

NAMESPACE = "theo-demo-test"


def test_theo_demo_places_the_call_and_prints_transcript_and_latencies(ray_cluster, model_handles, tmp_path):
    import ray

    out_dir = tmp_path / "demo"
    env = {
        **os.environ,
        "THEO__RAY__ADDRESS": ray.get_runtime_context().gcs_address,
        "THEO__RAY__NAMESPACE": NAMESPACE,
        "THEO__SIP__PORT": str(free_sip_port()),
        "THEO__PATHS__OUTPUT_DIR": str(tmp_path),
        "COLUMNS": "200",  # rich's table width in a pipe
    }
    theo = Path(sys.executable).with_name("theo")
    try:
        result = subprocess.run(
            [str(theo), "demo", "--out", str(out_dir)], env=env, capture_output=True, text=True, timeout=540
        )
    finally:
        # The demo leaves its call plane running (detached, as `theo up` would): remove it.
        killed = asyncio.run(stop_call_plane(NAMESPACE))
    output = result.stdout + result.stderr
    print(result.stdout[-6000:])
    assert result.returncode == 0, output[-6000:]
    assert SUPERVISOR in killed and f"{GATEWAY_PREFIX}0" in killed

    # What a new user reads: the transcript and the latency table, split by Theo's spans.
    assert "Transcript" in output and "Per-turn latency (ms)" in output
    for column in ("first audio", "caller said"):
        assert column in output
    assert str(out_dir) in output  # the folder it names at the end

    # The files it names.
    wavs = list(out_dir.glob("*.wav"))
    assert wavs, sorted(p.name for p in out_dir.iterdir())
    summary = json.loads((out_dir / "summary.json").read_text())
    record = json.loads((out_dir / "call-record.json").read_text())
    # The greeting was heard, and all three caller turns of the scenario were heard by Theo
    # and answered with audio that reached the caller.
    assert summary["greeting_text"]
    caller_turns = [t for t in summary["turns"] if t["kind"] == "turn"]
    assert len(caller_turns) == 3, caller_turns
    assert all(t["first_audio_ms"] is not None and t["first_audio_ms"] > 0 for t in caller_turns), caller_turns
    assert summary["first_audio"]["count"] == 3
    assert len(record["turns"]) >= 3 and not record["errors"], record["errors"]
    assert all(t["caller_text"] for t in record["turns"][:3])
    # The answer the caller heard carries the grounded fact (DEMO_FACTS: janeiro, R$ 89,90).
    heard = " ".join(t["text"] for t in summary["agent_turns"]).lower()
    assert "janeiro" in heard and ("89" in heard or "oitenta e nove" in heard), heard
    assert summary["intelligibility"]["wer"] is not None and summary["intelligibility"]["wer"] <= 0.25, (
        summary["intelligibility"], heard)
    assert summary["first_content_audio"]["count"] == 3
    assert summary["sentiment_trajectory"] and None not in summary["sentiment_trajectory"], summary["sentiment_errors"]
    for figure in ("first content audio", "agent intelligibility", "sentiment", "time: "):
        assert figure in output, figure
