"""`theo bench telemetry-overhead`'s own logic without Ray: the two planes' configs, the
pairing of turns, and the in-process span cost (a real provider and exporter)."""

from __future__ import annotations

from theo_ray.bench.sim_calls import TurnSample
from theo_ray.bench.telemetry_bench import _paired, span_cost, telemetry_modes
from theo_ray.config import config_from_mapping


def test_the_planes_differ_only_in_telemetry():
    config = config_from_mapping({"telemetry": {"jsonl": False, "metrics": False, "otlp_endpoint": "http://t:4318"}})
    modes = telemetry_modes(config)
    on, off = modes["on"].telemetry, modes["off"].telemetry
    assert on.enabled and on.jsonl and on.records_metrics and on.otlp_endpoint == "http://t:4318"
    assert not off.enabled and not off.records_metrics
    assert modes["on"].conversation == modes["off"].conversation == config.conversation


def test_turns_pair_by_call_index_and_question():
    def sample(mode, call, turn, ms):
        return TurnSample(session_id=f"telemetry-{mode}-120000-{call}", caller_turn=turn, label="q", first_audio_ms=ms)

    on = [sample("on", 1, 1, 1000.0), sample("on", 1, 2, 2000.0), sample("on", 2, 1, 1500.0)]
    off = [sample("off", 1, 1, 990.0), sample("off", 1, 2, 2030.0), sample("off", 3, 1, 10.0)]
    median, pairs = _paired(on, off, "first_audio_ms")
    assert pairs == 2 and median == -10.0  # (+10, -30): the unpaired turns are left out
    assert _paired(on, [], "first_audio_ms") == (None, 0)


def test_span_cost_times_both_paths_and_writes_the_spans(tmp_path):
    cost = span_cost(tmp_path, requests=400, block=100)
    assert cost.requests == 400 and cost.on_us > 0 and cost.off_us > 0
    assert abs(cost.per_turn_us - (cost.on_us - cost.off_us) * 3) < 0.1  # from the unrounded medians
    # The "on" spans really went through the batch exporter to JSON lines.
    lines = [line for path in tmp_path.glob("*.jsonl") for line in path.read_text().splitlines()]
    assert len(lines) == 401  # 400 tts.synthesize + the call span
