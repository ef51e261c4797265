"""RepetitionGuard: loops seen from the packaged SmolLM2 are caught, ordinary replies are not."""

import pytest

from theo_ray.errors import ConfigError
from theo_ray.turn.repetition_guard import RepetitionGuard
from theo_ray.turn.settings import RepetitionGuardSettings


def fed(text: str, step: int) -> tuple[bool, str]:
    """Feed `text` in deltas of `step` characters; (loop found?, text fed until it was)."""
    guard = RepetitionGuard()
    for i in range(0, len(text), step):
        if guard.feed(text[i : i + step]):
            return True, text[: i + step]
    return False, text


# Replies the packaged SmolLM2-135M wrote in `theo demo` and in a sampling check.
LOOPS = [
    "Onde? OZ, OZ, OZ, OZ, OZ, OZ, OZ, OZ, OZ, OZ, OZ, OZ, OZ, OZ, OZ, OZ, OZ, OZ, OZ",
    "Eles vão lá. Colas, Colas, Colas, Colas, Colas, Colas, Colas, Colas, Colas, Colas, Colas",
    "No que o que o que o que o que o que o que o que o que o que o que o que o que",
    "Tá bom, muito obrigado.\n\nNão não não não não não não não não não não não não não",
    "O que o cliente fica deu, seu minha fatura é máxima.\n\nO que o cliente fica deu, seu minha "
    "fatura é máxima.\n\nO que o cliente fica deu, seu minha fatura é máxima.\n\nO que o cliente",
]

ORDINARY = [
    "Claro! A sua fatura de janeiro é de cento e vinte e cinco reais e cinquenta centavos, "
    "com vencimento no dia dez. Posso ajudar em mais alguma coisa?",
    "Não, não, não, o senhor não precisa pagar de novo: o pagamento já foi confirmado.",
    "O seu CPF é nove nove nove nove nove nove nove nove nove zero zero, confere?",
    "O protocolo é 1 1 1 1 1 1 1 1 1 1 2. Anote, por favor.",
    "Muito, muito, muito obrigado pela paciência. Tchau, tchau!",
    "Pode repetir? Pode repetir? Não entendi.",
]


@pytest.mark.parametrize("step", [1, 4, 1000])
@pytest.mark.parametrize("text", LOOPS)
def test_loops_are_caught_early(text, step):
    found, upto = fed(text, step)
    assert found, text
    # Caught within a few repeats, not at the end of a 160-token reply.
    assert len(upto) <= len(text)


@pytest.mark.parametrize("step", [1, 5, 1000])
@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_replies_are_not_loops(text, step):
    assert fed(text, step) == (False, text)


def test_the_loop_is_reported_with_its_unit():
    guard = RepetitionGuard()
    assert guard.feed("Colas, " * 7) is False
    assert guard.feed("Colas, ") is True
    assert guard.loop == ("colas", 8)
    assert guard.feed("anything") is True  # stays found


def test_a_word_split_across_deltas_is_one_word():
    guard = RepetitionGuard(RepetitionGuardSettings(single_word_repeats=3))
    for delta in ["Col", "as, Co", "las, C", "olas"]:
        assert guard.feed(delta) is False  # the third "Colas" may continue: not yet counted
    assert guard.feed(".") is True


def test_disabled_and_bad_settings():
    assert RepetitionGuard(RepetitionGuardSettings(enabled=False)).feed("OZ, " * 50) is False
    with pytest.raises(ConfigError):
        RepetitionGuardSettings(short_unit_repeats=1)
