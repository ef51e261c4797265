"""The embedded default model (llama.cpp, Qwen2.5-Coder-1.5B) under the compact persona,
through the real LanguageModel deployment: it answers from the facts it was given, in
Portuguese, in a short reply, with no tool call.

Not tested because the 1.5B does not do it (measured, README *Models*): calling
transfer_call when the caller asks for a person (0 of 4 asks), and not inventing what its
prompt does not say (it answered store locations and opening hours it was never given).
Questions written for this test, not the demo's. The model samples at the deployment's
temperature, so the case gets two tries; both failing is a failure.
"""

from __future__ import annotations

import pytest

from theo_ray.messages import ChatMessage, GenerateRequest
from theo_ray.turn.prompt import PromptBuilder
from theo_ray.turn.settings import PromptSettings, ToolSettings
from theo_ray.turn.tools import ToolRegistry

pytestmark = pytest.mark.slow

# In digits: given "cento e dez reais" the 1.5B answered "R$ 100,00"; given "R$ 110,00" it
# copies the amount (the voice says it in words, `turn/spoken_form.py`).
FACTS = ("Informações desta ligação: a cliente é Ana Lima. O plano dela é de 300 megas, "
         "custa R$ 110,00 por mês e vence todo dia 5.")


async def _reply(llm, caller: str, n: int) -> tuple[str, list]:
    tools = ToolSettings()
    system = PromptBuilder(PromptSettings(company_name="Fibra Sul", extra_instructions=FACTS)).build(
        tools.transfer_destinations)
    request = GenerateRequest(
        messages=[ChatMessage(role="system", content=system),
                  ChatMessage(role="assistant", content="Olá! Aqui é a Theo. Como posso te ajudar?"),
                  ChatMessage(role="user", content=caller)],
        tools=ToolRegistry(tools).schemas(), max_tokens=80, request_id=f"persona-{n}",
    )
    deltas = [d async for d in llm.options(stream=True).generate.remote(request)]
    return "".join(d.text for d in deltas), [d.tool_call for d in deltas if d.tool_call]


async def _tries(llm, caller: str, check) -> list[tuple[str, list]]:
    seen = []
    for n in range(2):
        text, calls = await _reply(llm, caller, n)
        seen.append((text, [c.name for c in calls]))
        if check(text.lower(), [c.name for c in calls]):
            return seen
    pytest.fail(f"{caller!r}: {seen}")


async def test_it_answers_from_the_facts_in_portuguese(model_handles):
    await _tries(model_handles.llm, "Quanto eu pago por mês no meu plano?",
                 lambda text, calls: ("cento e dez" in text or "110" in text) and not calls and len(text) < 220)
