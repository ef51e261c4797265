"""The llama.cpp backend on the packaged Qwen2.5-Coder-1.5B GGUF (real weights, no Ray)."""

from __future__ import annotations

import asyncio

import pytest

from theo_ray.config import LanguageModelSettings
from theo_ray.messages import ChatMessage, GenerateRequest
from theo_ray.turn.prompt import PromptBuilder
from theo_ray.turn.settings import PromptSettings, ToolSettings
from theo_ray.turn.tools import ToolRegistry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from theo_ray.deployments.backends.llama_cpp_engine import LlamaCppBackend
    from theo_ray.config import TheoConfig

    return LlamaCppBackend(LanguageModelSettings(), TheoConfig().model_cache())


def _request(text: str, **kw) -> GenerateRequest:
    tools = ToolSettings()
    system = PromptBuilder(PromptSettings(company_name="Conecta")).build(tools.transfer_destinations)
    return GenerateRequest(
        messages=[ChatMessage(role="system", content=system), ChatMessage(role="user", content=text)],
        tools=ToolRegistry(tools).schemas(),
        **kw,
    )


def test_the_prompt_is_the_models_own_chat_template_with_the_tools(backend):
    prompt = backend.render_prompt(_request("Oi"))
    assert prompt.startswith("<|im_start|>system\nVocê é Theo")
    assert '"name": "transfer_call"' in prompt and prompt.endswith("<|im_start|>assistant\n")
    assert backend.count_tokens(prompt) > 300


async def test_a_reply_streams_in_portuguese(backend):
    pieces = [p async for p in backend.stream(_request("Bom dia, tudo bem?", max_tokens=40), "r1")]
    text = "".join(t for t, _, _ in pieces)
    # Tokens that queued up while the consumer was busy come as one piece.
    assert pieces[-1][1] in {"stop", "length"} and pieces[-1][2] >= len(pieces) - 1  # + the finish chunk
    assert any(w in text.lower() for w in ("bom dia", "olá", "ajudar", "tudo", "posso")), text
    assert backend.unfinished() == 0


async def test_abort_stops_generation_and_the_next_request_runs(backend):
    got = []

    async def consume():
        async for text, _, n in backend.stream(_request("Conte uma história longa.", max_tokens=150, min_tokens=150), "long"):
            got.append(n)

    task = asyncio.create_task(consume())
    while len(got) < 3:
        await asyncio.sleep(0.02)
    await backend.abort("long")
    await asyncio.wait_for(task, 10)
    assert 3 <= len(got) < 150 and backend.unfinished() == 0
    # A cancelled consumer (a barge-in cancels the task) frees the context too.
    task = asyncio.create_task(consume())
    await asyncio.sleep(0.5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert backend.unfinished() == 0
    again = [p async for p in backend.stream(_request("Oi", max_tokens=5), "after")]
    assert again and backend.unfinished() == 0


async def test_min_tokens_holds_the_end_of_the_reply(backend):
    pieces = [p async for p in backend.stream(_request("Diga só: sim.", max_tokens=30, min_tokens=30), "min")]
    assert pieces[-1][2] == 30 and pieces[-1][1] == "length"


async def test_the_prefilled_prompt_is_saved_and_the_next_start_loads_it(backend):
    """The second replica start of the same model and prompt skips the ~10 s prefill, and
    replies exactly as after a prefill (greedy decoding)."""
    from theo_ray.deployments.backends.llama_cpp_engine import LlamaCppBackend
    from theo_ray.config import TheoConfig

    start = _request("Oi")
    tokens = backend.llm.tokenize(backend.render_prompt(start).encode(), add_bos=False, special=True)
    backend._prefix_path(tokens).unlink(missing_ok=True)
    assert backend.warm(start).startswith("prompt prefilled and saved")
    question = _request("Qual é o horário de atendimento?", max_tokens=24, temperature=0.0)
    after_prefill = "".join([t async for t, _, _ in backend.stream(question, "p1")])

    second = LlamaCppBackend(LanguageModelSettings(), TheoConfig().model_cache())
    try:
        assert second.warm(start).startswith("prompt prefix loaded")
        assert second.llm.n_tokens == len(tokens)
        after_load = "".join([t async for t, _, _ in second.stream(question, "p2")])
    finally:
        second.shutdown()
    assert after_load == after_prefill and after_load.strip()


def test_the_warm_prompt_is_the_start_of_a_real_first_turn(backend):
    """What the replica prefills (persona, tools, greeting) is a prefix of the first request
    a call sends, so the first turn only prefills what the caller said."""
    from theo_ray.cli.demo import demo_config
    from theo_ray.config import TheoConfig
    from theo_ray.runtime.serve_apps import call_prompt_start

    config = demo_config(TheoConfig())
    warm = call_prompt_start(config)
    first_turn = GenerateRequest(
        messages=[*warm.messages[:-1], ChatMessage(role="user", content="Oi, eu quero saber da minha fatura.")],
        tools=warm.tools,
    )
    assert warm.messages[1].role == "assistant" and warm.messages[1].content == config.conversation.greeting
    warm_tokens = backend.count_tokens(backend.render_prompt(warm))
    turn = backend.render_prompt(first_turn)
    shared = backend.render_prompt(warm).split("<|im_start|>user")[0]
    assert turn.startswith(shared) and config.conversation.greeting in shared
    assert backend.count_tokens(turn) - backend.count_tokens(shared) < 40 < warm_tokens


@pytest.mark.parametrize("line, label", [
    ("Pode me mandar a segunda via do boleto?", "neutral"),
    ("Meu endereço mudou, agora é rua das Flores, cento e dois.", "neutral"),
    ("Que atendimento excelente, valeu mesmo!", "positive"),
    ("Estou cansado de esperar, isso é ridículo.", "negative"),
])
async def test_the_embedded_model_tells_the_callers_sentiment(backend, line, label):
    """Lines the sentiment question was not tuned on (the demo's call's were)."""
    from theo_ray.sim.call_summary import sentiment_classifier
    from theo_ray.sim.conversation_metrics import ConversationLine, SentimentRequest

    async def generate(request):
        async for text, _, _ in backend.stream(request, request.request_id):
            yield text

    greeting = [ConversationLine("agent", "Olá! Aqui é a Theo. Como posso te ajudar?")]
    score = await sentiment_classifier(generate)(SentimentRequest("t", 1, line, greeting))
    assert score.label == label, line


async def test_an_abort_during_a_long_prefill_stops_it_and_keeps_what_was_done(backend):
    """A caller who barges in while the model still reads a long prompt frees the replica
    within a chunk, not after the whole prefill; the part evaluated stays cached."""
    long_question = "Me explica de novo. " + " ".join(f"Item {n}: a fatura do mês {n} veio errada." for n in range(60))
    request = _request(long_question, max_tokens=20)
    tokens = backend.llm.tokenize(backend.render_prompt(request).encode(), add_bos=False, special=True)

    async def consume():
        async for _ in backend.stream(request, "long-prefill"):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(1.0)
    await backend.abort("long-prefill")
    await asyncio.wait_for(task, 10)
    assert 0 < backend.llm.n_tokens < len(tokens) - 1, (backend.llm.n_tokens, len(tokens))
    assert backend.unfinished() == 0
    # The next request reuses the evaluated part and runs to its end.
    pieces = [p async for p in backend.stream(_request("Oi, tudo bem?", max_tokens=8), "after")]
    assert pieces[-1][1] in {"stop", "length"}
