"""Issue 18 item 6: every per-call resource has a cap that is enforced and counted when hit
(RTP datagram size, jitter-buffer depth, caller transcript, LLM context, tool-call
arguments, call length). The SDP cap (513) is tested with the SIP torture catalogue."""

from __future__ import annotations

import asyncio

import pytest

from theo_ray.conversation.call_limits import caps_hit
from theo_ray.conversation.records import CallRecord
from theo_ray.errors import ConfigError
from theo_ray.media.jitter_buffer import JitterBuffer
from theo_ray.media.media_stats import MediaStats, fill_reception
from theo_ray.media.plc import PacketLossConcealer
from theo_ray.media.reception_stats import ReceptionStats
from theo_ray.media.rtp import RtpPacket, RtpParseError, build_rtp, parse_rtp
from theo_ray.media.settings import MediaSettings
from theo_ray.messages import ToolCall
from theo_ray.turn.memory import ConversationMemory, MemoryStats
from theo_ray.turn.settings import MemorySettings, ToolSettings
from theo_ray.turn.tools import RejectedToolCall, ToolRegistry, ToolRegistryStats, TRANSFER_CALL


def _packet(seq: int, payload: bytes = b"\x7f" * 160) -> RtpPacket:
    return RtpPacket(0, seq, seq * 160, 1, payload=payload)


def test_rtp_datagram_over_the_cap_is_refused_by_the_parser():
    settings = MediaSettings(max_datagram_bytes=200)
    ok = build_rtp(_packet(1))  # 172 bytes
    assert parse_rtp(ok, settings.max_datagram_bytes).sequence == 1
    with pytest.raises(RtpParseError) as err:
        parse_rtp(build_rtp(_packet(2, b"\x7f" * 320)), settings.max_datagram_bytes)
    assert err.value.reason == "oversized"  # the session counts it in drops.oversized


@pytest.mark.parametrize("field,value", [
    ("max_datagram_bytes", 11), ("max_datagram_bytes", 70_000), ("jitter_max_ms", 5_000.0),
    ("jitter_max_ms", 20.0), ("inbound_queue_frames", 0),
])
def test_media_caps_refuse_nonsense(field, value):
    with pytest.raises(ConfigError):
        MediaSettings(**{field: value})


def test_jitter_buffer_depth_is_capped_and_the_overflow_reaches_media_stats():
    jb = JitterBuffer(8000, 20, min_ms=40, max_ms=100)
    for seq in range(40):  # a 40-packet burst at one instant: 800 ms of audio
        jb.put(_packet(seq), 0.0)
    assert jb.depth_ms(0.0) <= 120.0  # max_ms plus one frame
    assert jb.stats.overflow_dropped >= 40 - 6
    stats = MediaStats()
    fill_reception(stats, "PCMU", ReceptionStats(8000), jb, PacketLossConcealer(8000, 160), 0.0, 20)
    assert stats.jitter_overflow_dropped == jb.stats.overflow_dropped


def test_caller_transcript_is_cut_to_its_cap_and_counted():
    memory = ConversationMemory(MemorySettings(max_caller_chars=100))
    memory.add_caller("sim " * 20)
    memory.add_caller("não " * 500)  # a 2000-character monologue
    assert [len(t.text) for t in memory.turns] == [80, 101]  # 100 kept + "…"
    assert memory.stats.caller_text_truncated == 1
    with pytest.raises(ConfigError):
        MemorySettings(max_caller_chars=10)


def test_llm_context_is_folded_at_its_token_budget_and_counted():
    memory = ConversationMemory(MemorySettings(token_budget=60, keep_recent_turns=2, max_caller_chars=400))
    for i in range(6):
        memory.add_caller(f"pergunta {i} " + "palavra " * 30)
        memory.add_agent(f"resposta {i}")
    assert memory.needs_summary
    assert asyncio.run(memory.summarise())
    assert len(memory.turns) == 2 and memory.stats.summaries == 1
    assert len(memory.summary) <= memory.settings.summary_max_chars
    assert not memory.needs_summary


def test_tool_call_arguments_over_the_cap_are_rejected_before_validation():
    registry = ToolRegistry(ToolSettings(max_argument_bytes=128))
    fine = registry.check(ToolCall("1", TRANSFER_CALL, {"destination": "atendimento", "reason": "pedido"}))
    assert not isinstance(fine, RejectedToolCall)
    huge = registry.check(ToolCall("2", TRANSFER_CALL, {"destination": "atendimento", "reason": "x" * 500}))
    assert isinstance(huge, RejectedToolCall) and "too large" in huge.error
    assert registry.stats.rejected_too_large == 1 and registry.stats.rejected_bad_arguments == 0
    with pytest.raises(ConfigError):
        ToolSettings(max_argument_bytes=10)


def test_the_call_record_names_each_cap_the_call_hit():
    memory = MemoryStats(summaries=2, caller_text_truncated=1)
    tools = ToolRegistryStats(rejected_too_large=3)
    assert caps_hit("max_call_seconds", memory, tools) == {
        "call_seconds": 1, "caller_chars": 1, "memory_token_budget": 2, "tool_argument_bytes": 3}
    assert caps_hit("caller_hangup", MemoryStats(), ToolRegistryStats()) == {}
    assert CallRecord("s").limits_hit == {}
