import pytest

from theo_ray.errors import ConfigError
from theo_ray.turn.prompt import PACKAGED_PERSONA, PromptBuilder
from theo_ray.turn.settings import PromptSettings


def test_packaged_persona_is_versioned_and_filled():
    builder = PromptBuilder(PromptSettings(company_name="Acme Telecom", agent_name="Theo", persona="full",
                                           extra_instructions="Horário: 8h às 18h."))
    assert PACKAGED_PERSONA.read_text().startswith("<!-- version: ")
    assert builder.version == "1"
    prompt = builder.build({"suporte": "problemas técnicos", "financeiro": "faturas"})
    assert prompt.startswith("Você é Theo, atendente da Acme Telecom.")
    assert "suporte (problemas técnicos); financeiro (faturas)" in prompt
    assert prompt.rstrip().endswith("Horário: 8h às 18h.")
    assert "{{" not in prompt and "version" not in prompt
    for rule in ("Nunca faça listas", "tá", "pode repetir", "SEMPRE diga antes pra onde",
                 "[interrompido em:"):
        assert rule in prompt


def test_compact_persona_is_the_default_and_keeps_the_rules():
    builder = PromptBuilder(PromptSettings(company_name="Acme Telecom", extra_instructions="Fatura: paga."))
    assert builder.path.name == "persona_ptbr_compact.md" and builder.version == "2-compact"
    prompt = builder.build({"suporte": "problemas técnicos"})
    assert prompt.startswith("Você é Theo, atendente da Acme Telecom,")
    assert "suporte (problemas técnicos)" in prompt and prompt.rstrip().endswith("Fatura: paga.")
    # The tool-call format, the transfer rule, no invented facts, the interruption mark.
    for rule in ("<tool_call>", "transfer_call", "end_call", "Nunca invente", "[interrompido em:"):
        assert rule in prompt
    # Short: every token is prefill time on 2 cores.
    assert len(prompt) < 2 * len(PromptBuilder(PromptSettings(persona="full")).build({"suporte": "x"})) / 1.5


def test_override_path(tmp_path):
    custom = tmp_path / "persona.md"
    custom.write_text("<!-- version: 7b -->\nOlá, sou {{agent_name}} da {{company_name}}.\n")
    builder = PromptBuilder(PromptSettings(path=str(custom), agent_name="Bia", company_name="X"))
    assert builder.version == "7b"
    assert builder.build() == "Olá, sou Bia da X."


@pytest.mark.parametrize("content, match", [
    ("sem versão\n{{agent_name}}", "version"),
    ("<!-- version: 1 -->\n{{desconhecido}}", "desconhecido"),
])
def test_bad_prompt_files(tmp_path, content, match):
    path = tmp_path / "p.md"
    path.write_text(content)
    with pytest.raises(ConfigError, match=match):
        PromptBuilder(PromptSettings(path=str(path))).build()
    with pytest.raises(ConfigError, match="cannot read"):
        PromptBuilder(PromptSettings(path=str(tmp_path / "missing.md")))
