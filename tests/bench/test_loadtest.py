"""`theo loadtest --calls 3 --duration 20` end to end: three concurrent simulated SIP calls
(pjsua2 callers on loopback, Kokoro caller voice) into a private call plane running the
streaming turn loop on the real model deployments (faster-whisper, vLLM with the packaged
model, Kokoro), measured from the callers' recordings.

Timing targets are not checked here (the load test prints them); this checks that the load
test places and completes every call, measures them, and samples the CallActors.
"""

from __future__ import annotations

import pytest

from theo_ray.bench.load_mix import DEFAULT_MIX
from theo_ray.bench.loadtest import LoadtestSettings, LoadtestTick, run_loadtest

pytestmark = pytest.mark.slow


async def test_loadtest_three_calls_for_twenty_seconds_has_no_failed_calls(
    ray_cluster, theo_config, model_handles, tmp_path
):
    ticks: list[LoadtestTick] = []
    settings = LoadtestSettings(calls=3, duration_s=20.0, ramp_s=4.0, drain_s=300.0)
    report = await run_loadtest(theo_config, model_handles, settings, tmp_path, on_tick=ticks.append,
                                say=lambda _m: None)

    print(f"\nloadtest: placed {report.calls_placed}, failed {report.failed}, dropped {report.dropped}, "
          f"first audio {report.first_audio}, barge-in {report.barge_in_reaction}, "
          f"jitter {report.caller_jitter_ms}, lost {report.caller_lost_frames}, CPU {report.cpu_percent}, "
          f"CallActor RSS {report.callactor_rss_mb}")
    assert report.calls_placed >= 3
    assert report.failed == 0, report.errors
    assert report.dropped == 0 and report.cut_at_end == 0
    assert report.calls_completed == report.calls_placed
    # Every call of the mix was analysed from its own recording: the pre-rendered greeting at
    # least was heard. (How many replies came within the scenarios' waits depends on the
    # machine's load: a figure the load test prints, not a correctness check.)
    assert {row.scenario for row in report.calls} == set(DEFAULT_MIX)
    assert all(row.agent_turns_heard >= 1 for row in report.calls), [(r.scenario, r.unanswered_steps) for r in report.calls]
    assert report.first_audio.count == sum(len(row.first_audio_ms) for row in report.calls)
    assert all(f > 0 for row in report.calls for f in row.first_audio_ms)
    # Calls overlapped, and each one's CallActor was found and sampled.
    assert report.max_concurrent >= 2
    assert report.callactor_rss_mb.count == len(report.calls)
    assert 10.0 < report.callactor_rss_mb.p50 < 2000.0
    # The progress callback saw the run go by and the drain begin.
    assert ticks and ticks[-1].draining and ticks[-1].placed == report.calls_placed
