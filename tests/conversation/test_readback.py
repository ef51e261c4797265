"""The STT hint from what the agent said, and the read-back of unsure dictated digits
(stt_hint.py, readback.py): pure functions, no call."""

from __future__ import annotations

import pytest

from theo_ray.conversation.readback import ReadBackTracker, answer_to, spoken_digits, unsure_digits
from theo_ray.conversation.stt_hint import DIGITS_CUE, hint_for
from theo_ray.messages import Word


def _words(*pairs: tuple[str, float]) -> list[Word]:
    return [Word(text, 0.0, 0.1, p) for text, p in pairs]


def test_the_hint_is_the_last_question_with_the_digits_cue_when_it_asks_for_digits():
    assert hint_for("O plano custa 89 reais. Qual é o seu CPF?").text == f"Qual é o seu CPF? {DIGITS_CUE}"
    assert hint_for("Você tem o número do protocolo? Se não, tudo bem.").expects == "digits"
    assert hint_for("Posso ajudar em mais alguma coisa?").text == "Posso ajudar em mais alguma coisa?"
    assert hint_for("Certo, vou verificar.").text == "Certo, vou verificar."  # no question: what was said
    assert hint_for("").text == ""
    long = "palavra " * 100 + "fim."
    bounded = hint_for(long, max_chars=40).text
    assert len(bounded) <= 40 and bounded.endswith("fim.") and bounded.split()[0] == "palavra"


def test_an_unsure_digit_run_is_found_with_its_least_sure_word_and_money_is_not_a_dictation():
    words = _words(("Meu", 0.9), ("CPF", 0.9), ("é", 0.9), ("452.318", 0.8), ("990-17.", 0.3))
    [run] = unsure_digits(words, min_digits=4, threshold=0.5)
    assert run.digits == "45231899017" and run.probability == 0.3
    assert unsure_digits(words, min_digits=4, threshold=0.2) == []
    spoken = _words(("quatro", 0.9), ("cinco", 0.2), ("dois", 0.9), ("oito", 0.9))
    assert [r.digits for r in unsure_digits(spoken, 4, 0.5)] == ["4528"]
    money = _words(("A", 0.9), ("conta", 0.9), ("veio", 0.9), ("1290", 0.1), ("reais.", 0.9))
    assert unsure_digits(money, 4, 0.5) == []
    assert unsure_digits(_words(("dia", 0.9), ("15", 0.1)), 4, 0.5) == []  # too short to be dictated


def test_digits_are_read_back_one_by_one_in_groups():
    assert spoken_digits("45231899017") == "quatro cinco dois, três um oito, nove nove zero, um sete"
    assert spoken_digits("2816") == "dois oito, um seis"  # never a lone digit at the end


@pytest.mark.parametrize("text, answer", [
    ("Sim.", "yes"), ("Isso mesmo!", "yes"), ("Tá certo.", "yes"), ("Não.", "no"), ("Não, está errado.", "no"),
    ("Não, é 4 5 2.", "other"), ("Sim, mas quero falar do boleto.", "other"), ("", "other"),
])
def test_the_answer_to_a_read_back(text, answer):
    assert answer_to(text) == answer


def test_the_tracker_reads_back_at_most_the_limit_in_a_row_and_a_yes_gives_back_the_turn():
    unsure = _words(("123456", 0.2))
    tracker = ReadBackTracker(threshold=0.5, min_digits=4, max_in_a_row=1)
    assert tracker.check("123456", unsure) is not None
    assert tracker.resolve("Não.") == ("no", "Não.")
    assert tracker.check("123456", unsure) is None  # the limit: on to the model
    assert tracker.check("123456", unsure) is not None  # a new dictation later: read back again
    assert tracker.resolve("Sim.") == ("yes", "123456")
    assert ReadBackTracker(0.0, 4, 2).check("123456", unsure) is None  # 0 = off


def test_bad_read_back_and_hint_settings_are_config_errors():
    from theo_ray.config import config_from_mapping
    from theo_ray.errors import ConfigError

    for bad in ({"readback_word_probability": 1.5}, {"readback_min_digits": 0}, {"stt_hint": "sometimes"}):
        with pytest.raises(ConfigError):
            config_from_mapping({"conversation": bad})
