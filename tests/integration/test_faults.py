"""The fault-injection suite: each fault of theo_ray/bench/faults.py (what `theo bench
faults` repeats) struck once on a live call — real Ray, real SIP/RTP over loopback, the
real STT/TTS deployments, the scripted language model (a hang rule) and a scripted
fallback model — and judged by what the caller's recording holds."""

from __future__ import annotations

import msgspec
import pytest
import pytest_asyncio

from theo_ray.bench.faults import FAULTS, run_fault, wait_for_deployments
from theo_ray.bench.sim_calls import SimCallPlane
from theo_ray.model_handles import ModelHandles
from theo_ray.sim.caller_voice import CallerVoice, CallerVoiceSettings

# One plane for the module: its tests share its event loop.
pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def plane(ray_cluster, model_handles, scripted_llm, scripted_fallback_llm, theo_config):
    handles = ModelHandles(stt=model_handles.stt, llm=scripted_llm, tts=model_handles.tts,
                           llm_fallback=scripted_fallback_llm)
    plane = SimCallPlane(theo_config, theo_config.conversation, handles, "faults", warm_pool_size=2)
    await plane.start()
    yield plane
    await plane.stop()
    await wait_for_deployments(handles)  # replicas these tests killed are back for the next module


@pytest.fixture(scope="module")
def voice(theo_config, tmp_path_factory):
    # A caller voice the project's own benchmarks do not use (they use pm_alex).
    return CallerVoice(tmp_path_factory.mktemp("voice"), CallerVoiceSettings(voice="pm_santa"),
                       model_cache_dir=theo_config.paths.model_cache)


async def _strike(plane, voice, tmp_path, name: str):
    result = await run_fault(plane, FAULTS[name], voice, tmp_path, f"fault-{name}", plane.handles)
    print(f"\n{name}: {msgspec.json.encode(result).decode()}")
    assert result.struck, result
    return result


async def test_call_actor_killed_mid_reply(plane, voice, tmp_path):
    result = await _strike(plane, voice, tmp_path, "call_actor_mid_reply")
    assert result.gap_ms is not None and result.gap_ms < 1000.0, result  # the apology within 1 s
    assert result.outcome == "continued" and result.answered >= 1, result


async def test_call_actor_killed_while_the_answer_is_prepared(plane, voice, tmp_path):
    result = await _strike(plane, voice, tmp_path, "call_actor_thinking")
    assert result.gap_ms is not None and result.gap_ms < 1000.0, result
    assert result.outcome == "continued" and result.answered >= 1, result


async def test_supervisor_killed_mid_reply_goes_unnoticed(plane, voice, tmp_path):
    result = await _strike(plane, voice, tmp_path, "supervisor_mid_reply")
    # Only the answer's own pauses (between sentences: TTS on 2 busy cores can take a second).
    assert result.gap_ms is not None and result.gap_ms < 1500.0, result
    assert result.outcome == "continued" and result.answered >= 1, result


async def test_hung_language_model_is_covered_then_answered_by_the_fallback(plane, voice, tmp_path):
    result = await _strike(plane, voice, tmp_path, "llm_hang")
    # Fillers, not dead air: the longest pause is the 1.2 s between the two fillers (measured
    # 1.0-1.5 s; the bound leaves room for a loaded machine).
    assert result.gap_ms is not None and result.gap_ms < 2000.0, result
    assert result.outcome == "continued" and result.answered == 1, result  # the next question too
    record = await plane.record("fault-llm_hang")
    first = record.turns[0]
    assert first.llm_model == "llm_fallback" and "Pix" in first.agent_text, first


async def test_tts_replica_killed_mid_reply(plane, voice, tmp_path):
    result = await _strike(plane, voice, tmp_path, "tts_replica_mid_reply")
    assert result.gap_ms is not None and result.gap_ms < 1500.0, result
    assert result.outcome in ("continued", "human"), result


async def test_llm_replica_killed_mid_reply(plane, voice, tmp_path):
    result = await _strike(plane, voice, tmp_path, "llm_replica_mid_reply")
    assert result.gap_ms is not None and result.gap_ms < 1500.0, result
    assert result.outcome in ("continued", "human"), result


async def test_stt_replica_killed_as_the_question_ends(plane, voice, tmp_path):
    result = await _strike(plane, voice, tmp_path, "stt_replica_at_question")
    assert result.outcome in ("continued", "human"), result
    assert result.longest_silence_ms is not None and result.longest_silence_ms < 4000.0, result
