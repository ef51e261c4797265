from theo_ray.sim.intelligibility import intelligibility, normalise


def test_numerals_accents_and_punctuation_do_not_count_as_errors():
    assert normalise("A fatura é R$ 89,90!") == "a fatura e oitenta e nove reais e noventa centavos"
    # Whisper writes "80 e 9 reais" for the "oitenta e nove reais" the agent said.
    out = intelligibility(["A fatura de janeiro é oitenta e nove reais."], ["A fatura de Janeiro e 80 e 9 reais"])
    assert out.wer == 0.0 and out.reference_words == 9


def test_misheard_and_missing_words_are_errors_over_the_whole_call():
    meant = ["Olá, aqui é o Theo, em que posso te ajudar?", "Deixa eu ver.", "De nada! Tchau."]
    heard = ["O LASP aqui é até o em que posso te ajudar.", "Deixe ao ver.", "Então, chinata, tchau!"]
    out = intelligibility(meant, heard)
    assert out.reference_words == 16 and 5 <= out.errors <= 9
    assert out.wer == round(out.errors / 16, 3)


def test_nothing_heard_or_nothing_meant_is_said_plainly():
    assert intelligibility(["Bom dia."], []).wer == 1.0
    silent = intelligibility(["", " "], ["ruído"])
    assert silent.wer is None and "nothing" in silent.reason
