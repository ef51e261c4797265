"""CallActor failover, end to end: a real Ray, the real CallSupervisor and CallActors, the
real STT/TTS deployments (scripted LLM), a caller on a real RtpSession that records what it
hears. The CallActor is killed in the middle of a reply; the caller must hear the apology
quickly, be answered afterwards, and the replacement must remember the conversation."""

from __future__ import annotations

import asyncio
import time

import pytest
import ray

from theo_ray.turn.memory import ConversationMemory
from tests.conversation.harness import AgentCall

pytestmark = pytest.mark.slow

FIRST = "Me explica como funciona o meu plano de internet."
SECOND = "Quero saber da minha fatura."


async def test_a_call_actor_killed_mid_reply_is_replaced_and_the_call_goes_on(theo_config, scripted_handles):
    async with AgentCall(theo_config, scripted_handles) as call:
        await call.prepare_speech(FIRST, SECOND)
        await call.wait_agent_start(0)
        await call.wait_agent_quiet()
        await call.say(FIRST)
        await call.wait_reply_audio(1)
        await asyncio.sleep(1.0)  # one second into the long answer
        first_actor = await call.supervisor.call_actor.remote(call.session_id)
        killed_at = time.monotonic()
        ray.kill(first_actor, no_restart=True)

        # The caller hears the agent again (the apology) soon after the kill.
        resumed_at = await call.wait_agent_start(killed_at + 0.3, timeout=10.0)
        stats = await call.supervisor.stats.remote()
        assert stats.failovers == 1 and stats.failover_failures == 0
        assert resumed_at - killed_at < 2.0, f"silence after the kill: {resumed_at - killed_at:.2f} s"
        second_actor = await call.supervisor.call_actor.remote(call.session_id)
        assert second_actor is not None and second_actor != first_actor

        # The replacement remembers the first question, and answers the next one.
        memory = ConversationMemory.from_checkpoint(await second_actor.checkpoint.remote())
        assert any(FIRST.split()[2] in turn.text for turn in memory.turns if turn.role == "user"), memory.turns
        await call.wait_agent_quiet()
        await call.say(SECOND)
        record = await call.wait_reply(1, timeout=60)
        assert "fatura" in record.turns[0].agent_text, record.turns[0]  # the scripted answer to that question
        print(f"failover: kill -> apology heard {1000 * (resumed_at - killed_at):.0f} ms, "
              f"supervisor takeover {stats.last_failover_ms:.0f} ms")


async def test_a_takeover_that_cannot_finish_in_time_ends_the_call_instead_of_leaving_silence(
    theo_config, scripted_handles
):
    import msgspec

    config = msgspec.structs.replace(theo_config, call=msgspec.structs.replace(theo_config.call, failover_timeout_s=0.001))
    async with AgentCall(config, scripted_handles) as call:
        await call.wait_agent_start(0)
        await call.wait_agent_quiet()
        ray.kill(await call.supervisor.call_actor.remote(call.session_id), no_restart=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stats = await call.supervisor.stats.remote()
            if stats.failover_failures:
                break
            await asyncio.sleep(0.1)
        assert stats.failover_failures == 1 and stats.failovers == 0
        # The call is closed (here there is no PBX to take the caller: the hang-up is tried).
        assert await call.supervisor.call_actor.remote(call.session_id) is None
        record = await call.supervisor.call_record.remote(call.session_id)
        assert record is None or record.end_reason in ("", "call_actor_lost")


async def test_a_crashed_supervisor_comes_back_and_adopts_the_call_in_progress(theo_config, scripted_handles):
    async with AgentCall(theo_config, scripted_handles) as call:
        await call.prepare_speech(SECOND)
        await call.wait_agent_start(0)
        await call.wait_agent_quiet()
        actor_before = await call.supervisor.call_actor.remote(call.session_id)
        killed_at = time.monotonic()
        ray.kill(call.supervisor, no_restart=False)  # Ray restarts it (max_restarts=-1)

        # The caller goes on talking to the agent as if nothing happened (RTP goes straight
        # to the CallActor) ...
        await call.say(SECOND)
        back_at = await _until_back(call.supervisor)  # the test reads records through it
        record = await call.wait_reply(1, timeout=60)
        assert "fatura" in record.turns[0].agent_text, record.turns[0]
        # ... and the restarted supervisor holds the call again, with the same CallActor.
        stats = await call.supervisor.stats.remote()
        assert stats.active == 1 and stats.adopted == 1, stats
        assert await call.supervisor.call_actor.remote(call.session_id) == actor_before
        print(f"supervisor restart: answering again {back_at - killed_at:.1f} s after the kill")


async def _until_back(supervisor, timeout_s: float = 30.0) -> float:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await supervisor.stats.remote()
            return time.monotonic()
        except (ray.exceptions.ActorUnavailableError, ray.exceptions.RayActorError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def _call_actors_left(supervisor_name: str) -> list[str]:
    from ray.util import list_named_actors

    from theo_ray.actor_names import CALL_ACTOR_PREFIX

    prefix = f"{CALL_ACTOR_PREFIX}{supervisor_name}-"
    return [e["name"] for e in list_named_actors(all_namespaces=True) if e["name"].startswith(prefix)]


async def test_no_call_actor_outlives_its_supervisors_shutdown(theo_config, scripted_handles):
    """CallActors are detached (they must outlive a crashed supervisor), so the shutdown has to
    end every one of them, those a pool refill was still making included."""
    async with AgentCall(theo_config, scripted_handles) as call:
        await call.wait_agent_start(0)
        name = f"sup-{call.session_id}"
        assert _call_actors_left(name)  # the call's actor and the warm pool
    deadline = time.monotonic() + 10
    while _call_actors_left(name) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert _call_actors_left(name) == []


PIX = "Fiz um pix e não caiu."


async def test_a_hung_language_model_hands_the_reply_to_the_fallback_model(
    theo_config, scripted_handles, scripted_fallback_llm
):
    """The primary LanguageModel hangs (its scripted rule waits a minute before the first
    word, through the real deployment); the fallback application answers instead."""
    import msgspec

    handles = msgspec.structs.replace(scripted_handles, llm_fallback=scripted_fallback_llm)
    limit = theo_config.conversation.timeouts.llm_fallback_after_s
    async with AgentCall(theo_config, handles) as call:
        await call.prepare_speech(PIX)
        await call.wait_agent_start(0)
        await call.wait_agent_quiet()
        asked = await call.say(PIX)
        record = await call.wait_reply(1, timeout=60)
        turn = record.turns[0]
        assert turn.llm_model == "llm_fallback" and "Pix cai na hora" in turn.agent_text, turn
        assert record.llm_fallbacks == 1 and record.model_timeouts == {"llm_first_token": 1}
        assert not record.transferred_to and not turn.error
        answered = call.agent_active_since(turn.first_rtp_at - 0.05)[0]
        # The answer comes within the primary's grace plus an ordinary reply's time; the
        # filler covers the start of the wait.
        # (measured 5.1 s on a quiet machine; well under the 12 s the emergency path would take)
        assert answered - asked < limit + 6.0, f"answer {answered - asked:.2f} s after the question"
        stats = await call.supervisor.stats.remote()
        primary = next(b for b in stats.breakers if b.name == "llm")
        assert primary.failures == 1 and primary.position == "closed"
        print(f"llm hang -> fallback: answer heard {answered - asked:.2f} s after the question "
              f"(grace {limit:.1f} s), longest silence {call.longest_silence(asked, answered):.2f} s")
