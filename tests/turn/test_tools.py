import json

import pytest

from theo_ray.errors import ConfigError
from theo_ray.messages import ToolCall
from theo_ray.turn.settings import DeclaredTool, ToolSettings
from theo_ray.turn.tools import (
    AcceptedToolCall,
    MalformedToolCall,
    RejectedToolCall,
    ToolCallParser,
    ToolRegistry,
)

SETTINGS = ToolSettings(
    transfer_destinations={"suporte": "problemas técnicos", "financeiro": "faturas e pagamentos"},
    tools=[DeclaredTool(
        name="consultar_fatura",
        description="Consulta a fatura do cliente pelo CPF.",
        parameters={"type": "object", "properties": {"cpf": {"type": "string",
                                                              "pattern": "^[0-9]{11}$"}},
                    "required": ["cpf"]},
    )],
)


def test_builtin_and_declared_schemas():
    registry = ToolRegistry(SETTINGS)
    names = [s.name for s in registry.schemas()]
    assert names == ["transfer_call", "end_call", "consultar_fatura"]
    transfer = registry.get("transfer_call").schema
    assert transfer.parameters["properties"]["destination"]["enum"] == ["financeiro", "suporte"]
    assert "faturas e pagamentos" in transfer.description
    assert registry.is_after_speech("transfer_call") and registry.is_after_speech("end_call")
    assert not registry.is_after_speech("consultar_fatura")


def test_valid_calls_are_accepted():
    registry = ToolRegistry(SETTINGS)
    result = registry.check(ToolCall("1", "transfer_call",
                                     {"destination": "suporte", "reason": "internet caiu"}))
    assert isinstance(result, AcceptedToolCall) and result.after_speech
    assert isinstance(registry.check(ToolCall("2", "consultar_fatura", {"cpf": "52998224725"})),
                      AcceptedToolCall)


@pytest.mark.parametrize("call, fragment", [
    (ToolCall("1", "transfer_call", {"destination": "lua", "reason": "x"}), "not one of"),
    (ToolCall("1", "transfer_call", {"destination": "suporte"}), "'reason' is a required"),
    (ToolCall("1", "transfer_call", {"destination": "suporte", "reason": "x", "extra": 1}),
     "Additional properties"),
    (ToolCall("1", "end_call", {"reason": 5}), "is not of type 'string'"),
    (ToolCall("1", "consultar_fatura", {"cpf": "123"}), "does not match"),
    (ToolCall("1", "voar", {}), "unknown tool 'voar'"),
])
def test_bad_arguments_are_rejected_and_counted(call, fragment):
    registry = ToolRegistry(SETTINGS)
    result = registry.check(call)
    assert isinstance(result, RejectedToolCall)
    assert fragment in result.error
    assert registry.stats.rejected == 1 and registry.stats.accepted == 0


def test_config_errors():
    with pytest.raises(ConfigError, match="already exists"):
        ToolRegistry(ToolSettings(tools=[DeclaredTool("end_call", "x")]))
    with pytest.raises(ConfigError, match="parameters"):
        ToolRegistry(ToolSettings(tools=[DeclaredTool("t", "x", {"type": "objeto"})]))
    with pytest.raises(ConfigError, match="destination"):
        ToolRegistry(ToolSettings(transfer_destinations={}))


CALL = {"name": "transfer_call", "arguments": {"destination": "suporte", "reason": "sem sinal"}}
STREAM = ("Vou te passar pro suporte técnico, que resolve isso rapidinho, tá? "
          f"<tool_call>\n{json.dumps(CALL, ensure_ascii=False)}\n</tool_call>")


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 11, 1000])
def test_parser_on_chunked_streams(chunk):
    parser = ToolCallParser()
    pieces = []
    for i in range(0, len(STREAM), chunk):
        pieces += parser.feed(STREAM[i : i + chunk])
    pieces += parser.flush()
    text = "".join(p for p in pieces if isinstance(p, str))
    calls = [p for p in pieces if isinstance(p, ToolCall)]
    assert text == "Vou te passar pro suporte técnico, que resolve isso rapidinho, tá? "
    assert len(calls) == 1 and calls[0].name == "transfer_call"
    assert calls[0].arguments == CALL["arguments"] and calls[0].id == "call_1"
    assert not any(c in text for c in "<>{}")


def test_parser_text_is_released_as_soon_as_it_cannot_be_a_tag():
    parser = ToolCallParser()
    assert parser.feed("Olá <") == ["Olá "]  # "<" might open a tag: held back
    assert parser.feed("b>") == ["<b>"]
    assert parser.feed("a <tool_") == ["a "]
    assert parser.feed('call>{"name": "end_call", "arguments": "{\\"reason\\": \\"fim\\"}"}') == []
    pieces = parser.feed("</tool_call> Tchau!")
    assert pieces[0] == ToolCall("call_1", "end_call", {"reason": "fim"})  # string arguments
    assert pieces[1:] == [" Tchau!"]


def test_parser_malformed_and_unclosed_calls():
    parser = ToolCallParser()
    pieces = parser.feed("Oi. <tool_call>{not json}</tool_call>Tudo bem?")
    assert pieces[0] == "Oi. " and pieces[2] == "Tudo bem?"
    assert isinstance(pieces[1], MalformedToolCall)
    assert parser.stats.malformed == 1
    pieces = parser.feed('<tool_call>{"name": "end_call", "parameters": {"reason": "ok"}}')
    assert pieces == []
    assert parser.flush() == [ToolCall("call_1", "end_call", {"reason": "ok"})]
    assert parser.stats.tool_calls == 1
    assert isinstance(ToolCallParser().feed("<tool_call>[1, 2]</tool_call>")[0], MalformedToolCall)


@pytest.mark.parametrize("chunk", [1, 3, 1000])
@pytest.mark.parametrize(
    "reply, spoken",
    [
        # Qwen2.5-1.5B writes the call's JSON without the tags, sometimes with doubled braces.
        ('Vou te passar. {"name": "transfer_call", "arguments": {"destination": "atendimento", "reason": "x"}}',
         "Vou te passar. "),
        ('Vou te passar. {{"name": "transfer_call", "arguments": {"destination": "atendimento", "reason": "x"}}}',
         "Vou te passar. "),
        ('Tchau! {"name": "end_call", "arguments": {"reason": "a } inside a string"}} Até logo.',
         "Tchau!  Até logo."),
    ],
)
def test_parser_reads_bare_json_tool_calls(reply, spoken, chunk):
    parser = ToolCallParser()
    pieces = []
    for i in range(0, len(reply), chunk):
        pieces += parser.feed(reply[i : i + chunk])
    pieces += parser.flush()
    calls = [p for p in pieces if isinstance(p, ToolCall)]
    assert len(calls) == 1 and calls[0].name in {"transfer_call", "end_call"}
    assert "".join(p for p in pieces if isinstance(p, str)) == spoken


def test_parser_drops_brace_blocks_that_are_no_tool_call():
    parser = ToolCallParser()
    pieces = parser.feed("Olha {isso não é json} e {\"a\": 1} fim.") + parser.flush()
    assert "".join(p for p in pieces if isinstance(p, str)) == "Olha  e  fim."
    assert parser.stats.malformed == 2
