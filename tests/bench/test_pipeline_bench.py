"""`theo bench pipeline`'s shared conversation settings: fixed-length replies, nothing cut."""

from theo_ray.bench.pipeline_bench import PipelineBenchSettings, bench_conversation
from theo_ray.config import load_config


def test_fixed_length_replies_turn_the_repetition_guard_off():
    conversation = load_config(None, environ={}).conversation
    assert conversation.turn.repetition_guard.enabled  # on in calls
    fixed = bench_conversation(conversation, PipelineBenchSettings(reply_tokens=80))
    assert (fixed.llm_min_tokens, fixed.llm_max_tokens) == (80, 80)
    assert not fixed.turn.repetition_guard.enabled and fixed.mode == "agent"
    free = bench_conversation(conversation, PipelineBenchSettings(reply_tokens=0))
    assert free.turn.repetition_guard.enabled
