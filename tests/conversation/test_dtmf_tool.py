"""The agent's send_dtmf tool (IVR navigation), on the fast turn machine: the keys leave
only after the words before them were played, bad keys never reach the line, and the tool
is not offered unless configured."""

from __future__ import annotations

import msgspec

from theo_ray.conversation.settings import ConversationSettings
from theo_ray.messages import ToolCall
from theo_ray.turn.settings import ToolSettings
from theo_ray.turn.tools import SEND_DTMF, AcceptedToolCall, RejectedToolCall, ToolRegistry
from tests.fakes.fake_call import fake_call
from tests.fakes.scripted_caller import Line
from tests.fakes.scripted_models import Rule
from tests.fakes.virtual_loop import run_virtual


def _with_dtmf() -> ConversationSettings:
    base = ConversationSettings()
    tools = msgspec.structs.replace(base.turn.tools, send_dtmf=True)
    return msgspec.structs.replace(base, turn=msgspec.structs.replace(base.turn, tools=tools))


RULES = [
    Rule(match="menu", reply="Certo, vou digitar a opção do financeiro.",
         tool=ToolCall(id="k1", name=SEND_DTMF, arguments={"digits": "3#"})),
]


def test_keys_are_sent_after_the_words_before_them():
    result = run_virtual(lambda: fake_call([Line(3.0, "Escolhe a opção do menu, por favor.", 1.8)], RULES,
                                           seconds=14, settings=_with_dtmf()))
    (turn,) = result.record.turns
    (execution,) = turn.tools
    assert execution.call.name == SEND_DTMF and execution.ok, execution
    assert [keys for _at, keys in result.line.keys_sent] == ["3#"]
    sent_at = result.line.keys_sent[0][0]
    spans = result.line.agent_audio_spans()
    reply = [(a, b) for a, b in spans if 4.8 < a < sent_at]  # the reply, after the question
    assert reply, spans
    assert reply[-1][1] <= sent_at + 0.02, (sent_at, spans)  # the keys after its last word


def test_bad_keys_are_rejected_before_the_line():
    registry = ToolRegistry(ToolSettings(send_dtmf=True))
    assert isinstance(registry.check(ToolCall("a", SEND_DTMF, {"digits": "12#"})), AcceptedToolCall)
    for bad in ({"digits": "12x"}, {"digits": ""}, {"digits": "1" * 33}, {}):
        assert isinstance(registry.check(ToolCall("b", SEND_DTMF, bad)), RejectedToolCall), bad


def test_the_tool_is_offered_only_when_configured():
    assert SEND_DTMF not in [s.name for s in ToolRegistry(ToolSettings()).schemas()]
    assert SEND_DTMF in [s.name for s in ToolRegistry(ToolSettings(send_dtmf=True)).schemas()]
