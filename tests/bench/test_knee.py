"""Knee finding of `theo loadtest --sweep` and the echo round trip measured from a recording's
analysis (no Ray, no SIP: the figures are built here and the functions judged on them)."""

from __future__ import annotations

from theo_ray.bench.loadtest import LoadtestReport, LoadtestSettings, echo_round_trips, find_knee
from theo_ray.sim.analysis import CallAnalysis, CallerTurn
from theo_ray.sim.percentiles import percentiles
from theo_ray.sim.speech_regions import SpeechRegion, TrackLevels


def _report(calls: int, p95_values: list[float]) -> LoadtestReport:
    empty = percentiles([])
    return LoadtestReport(
        settings=LoadtestSettings(calls=calls), agent="test", first_audio_what="", calls_placed=calls,
        calls_completed=calls, failed=0, dropped=0, timed_out=0, cut_at_end=0, unanswered_steps=0,
        max_concurrent=calls, first_audio=empty, first_audio_reply=empty, reply_audio=percentiles(p95_values), turns_filler_first=0,
        turns_without_reply=0, barge_in_reaction=empty,
        barge_ins_talked_on=0, caller_jitter_ms=empty, caller_lost_frames=0, caller_concealed_frames=0,
        cpu_percent=empty, cpu_count=2, callactor_rss_mb=empty, callactor_uss_mb=empty,
        callactor_cpu_percent=empty, simulator_cpu_percent=0.0, wall_s=1.0,
    )


def test_knee_is_the_first_n_whose_p95_doubles_the_smallest_ns():
    runs = [_report(3, [1900.0] * 5), _report(1, [1000.0] * 5), _report(2, [1500.0] * 5), _report(4, [2100.0] * 5)]
    knee, baseline = find_knee(runs)
    assert baseline == 1000.0
    assert knee == 4


def test_no_knee_when_p95_never_doubles_and_unmeasured_runs_are_skipped():
    runs = [_report(1, [1000.0]), _report(2, []), _report(3, [1999.0])]
    assert find_knee(runs) == (None, 1000.0)
    assert find_knee([_report(1, [])]) == (None, None)


def _analysis(caller: list[tuple[float, float]], agent: list[tuple[float, float]]) -> CallAnalysis:
    levels = TrackLevels(noise_floor_dbfs=-90.0, threshold_dbfs=-55.0, speech_level_dbfs=-20.0)
    return CallAnalysis(
        sample_rate=16000, duration_ms=20000.0, call_start_ms=0.0, call_end_ms=20000.0,
        caller_levels=levels, agent_levels=levels,
        caller_regions=[SpeechRegion(a, b) for a, b in caller], agent_regions=[SpeechRegion(a, b) for a, b in agent],
        caller_turns=[CallerTurn(i + 1, "turn", a, b) for i, (a, b) in enumerate(caller)],
        agent_turns=[], latencies=[], barge_ins=[], long_silences=[], overlaps=[], overlap_ms=0.0,
    )


def test_echo_round_trip_is_caller_onset_to_its_echos_onset():
    analysis = _analysis([(100.0, 2000.0), (5000.0, 6000.0)], [(230.0, 2130.0), (5145.5, 6140.0)])
    assert echo_round_trips(analysis) == [130.0, 145.5]


def test_a_turn_without_an_echo_inside_the_window_has_no_round_trip():
    analysis = _analysis([(100.0, 2000.0), (5000.0, 6000.0)], [(230.0, 2130.0), (6500.0, 7000.0)])
    assert echo_round_trips(analysis) == [130.0]
