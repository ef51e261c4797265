import asyncio

import msgspec

from theo_ray.messages import ChatMessage, ToolCall
from theo_ray.turn.memory import (
    ConversationMemory,
    MemoryCheckpoint,
    extractive_summary,
    interruption_mark,
)
from theo_ray.turn.settings import MemorySettings


class Clock:
    """Injected clock so turn timestamps are predictable."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        self.now += 1.0
        return self.now


def test_interruption_mark_format():
    heard = "Certo, vou verificar e depois te transferir para o supo"
    assert interruption_mark(heard) == '[interrompido em: "...te transferir para o supo—"]'
    assert interruption_mark("Oi") == '[interrompido em: "Oi—"]'
    # the turn loop's heard text already ends in the cut mark: one dash, not two
    assert interruption_mark("Oi, tudo be—") == '[interrompido em: "Oi, tudo be—"]'
    assert interruption_mark("—") == '[interrompido em: "—"]'


def test_heard_text_with_its_cut_mark_is_not_doubled_in_the_message():
    memory = ConversationMemory(clock=Clock())
    memory.add_caller("Oi")
    memory.add_agent("Olá, tudo bem? Como posso ajudar?", heard="Olá, tudo be—")
    assistant = memory.to_messages("Você é Theo.")[2].content
    assert assistant == 'Olá, tudo be [interrompido em: "Olá, tudo be—"]'


def test_messages_have_entities_summary_and_interruptions():
    memory = ConversationMemory(clock=Clock())
    new = memory.add_caller("Oi, meu nome é Ana Souza e meu CPF é 529.982.247-25")
    assert {e.kind for e in new} == {"name", "cpf"}
    memory.add_agent("Obrigada, Ana! Vou te transferir para o suporte técnico agora.",
                     heard="Obrigada, Ana! Vou te transferir para o supo")
    memory.add_caller("Não, espera, é sobre a fatura de R$ 120,50")
    messages = memory.to_messages("Você é Theo.")
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    system = messages[0].content
    assert system.startswith("Você é Theo.")
    assert "Nome: Ana Souza" in system and "CPF: 529.982.247-25" in system
    assert "R$ 120,50" in system
    assistant = messages[2].content
    assert assistant.startswith("Obrigada, Ana! Vou te transferir para o supo")
    assert '[interrompido em: "...Vou te transferir para o supo—"]' in assistant
    assert "suporte técnico agora" not in assistant  # the caller never heard it


def test_invalid_cpf_is_flagged_for_the_model():
    memory = ConversationMemory()
    memory.add_caller("meu cpf é 123.456.789-00")
    assert "CPF: 123.456.789-00 (inválido: confirme com o cliente)" in memory.entity_block()
    memory.add_caller("desculpa, é 529.982.247-25")  # no keyword, but valid check digits
    block = memory.entity_block()
    assert "CPF: 529.982.247-25" in block and "123.456.789-00" not in block


def test_entity_from_turn_one_reaches_turn_three_prompt():
    memory = ConversationMemory()
    memory.add_caller("meu telefone é (11) 98765-4321")
    memory.add_agent("Anotei.")
    memory.add_caller("e a fatura de janeiro?")
    memory.add_agent("Já vejo.")
    memory.add_caller("obrigado")
    assert "Telefone: (11) 98765-4321" in memory.to_messages("P")[0].content


def test_tool_calls_and_results_become_messages():
    memory = ConversationMemory()
    call = ToolCall("call_1", "transfer_call", {"destination": "suporte", "reason": "internet"})
    memory.add_agent("Vou te passar pro suporte, tá?", tool_calls=[call])
    memory.add_tool_result("call_1", "ok")
    _, assistant, tool = memory.to_messages("P")
    assert assistant.tool_calls == [call]
    assert tool == ChatMessage("tool", "ok", tool_call_id="call_1")


def fill(memory: ConversationMemory, exchanges: int) -> None:
    for i in range(exchanges):
        memory.add_caller(f"Pergunta número {i} sobre a minha conta de internet. Mais detalhes aqui.")
        memory.add_agent(f"Resposta {i}: olha, vou verificar isso pra você agora mesmo. Certo?")


async def test_summary_kicks_in_past_the_budget_with_the_summarizer():
    seen = {}

    async def summarizer(previous: str, turns):
        seen["previous"], seen["count"] = previous, len(turns)
        return "O cliente perguntou várias vezes sobre a conta de internet."

    memory = ConversationMemory(MemorySettings(token_budget=200, keep_recent_turns=4),
                                summarizer=summarizer)
    fill(memory, 3)
    assert not memory.needs_summary
    assert not await memory.summarise()
    fill(memory, 5)
    assert memory.needs_summary
    assert await memory.summarise()
    assert seen == {"previous": "", "count": 12}
    assert len(memory.turns) == 4
    assert memory.summary == "O cliente perguntou várias vezes sobre a conta de internet."
    assert "Resumo da conversa até aqui: O cliente perguntou" in memory.to_messages("P")[0].content
    assert memory.stats.summaries == 1 and memory.stats.summary_fallbacks == 0


async def test_summary_falls_back_when_the_summarizer_fails_or_hangs():
    async def broken(previous, turns):
        raise RuntimeError("LLM down")

    async def hangs(previous, turns):
        await asyncio.sleep(10)
        return "never"

    for summarizer in (broken, hangs, None):
        memory = ConversationMemory(
            MemorySettings(token_budget=100, keep_recent_turns=2, summary_timeout_s=0.05),
            summarizer=summarizer)
        fill(memory, 4)
        assert await memory.summarise()
        assert memory.summary.startswith("Cliente: Pergunta número 0 sobre a minha conta")
        assert "Agente: Resposta 0: olha, vou verificar isso pra você agora mesmo." in memory.summary
        assert memory.stats.summary_fallbacks == 1


async def test_summary_never_separates_a_tool_result_from_its_call():
    memory = ConversationMemory(MemorySettings(token_budget=50, keep_recent_turns=2))
    fill(memory, 2)
    memory.add_agent("Vou consultar.", tool_calls=[ToolCall("c1", "consulta", {})])
    memory.add_tool_result("c1", "saldo 10 reais")
    memory.add_agent("Seu saldo é de 10 reais.")
    await memory.summarise()
    assert memory.turns[0].role != "tool"


def test_extractive_summary_is_bounded_and_keeps_the_newest():
    memory = ConversationMemory()
    fill(memory, 30)
    summary = extractive_summary("resumo antigo", memory.turns, 300)
    assert len(summary) <= 300 and summary.startswith("…")
    assert "Resposta 29" in summary


def test_checkpoint_round_trip_survives_a_transfer():
    memory = ConversationMemory(clock=Clock())
    memory.add_caller("meu nome é Carlos, protocolo 123456")
    memory.add_agent("Certo, Carlos, vou te passar pro finan", heard="Certo, Carlos, vou te passar")
    memory.summary = "Cliente ligou sobre cobrança."
    blob = memory.encode()
    restored = ConversationMemory.from_checkpoint(blob)
    assert restored.checkpoint() == memory.checkpoint()
    assert restored.to_messages("P") == memory.to_messages("P")
    restored.add_caller("voltei, caiu a ligação")
    assert restored.caller_turns == 2
    as_json = msgspec.json.decode(msgspec.json.encode(memory.checkpoint()), type=MemoryCheckpoint)
    assert as_json == memory.checkpoint()
