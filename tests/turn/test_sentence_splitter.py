import pytest

from theo_ray.turn.sentence_splitter import SentenceSplitter
from theo_ray.turn.settings import SplitterSettings


def split(text: str, step: int = 1, min_words: int = 0, max_chars: int = 220, first_max_chars: int = 0) -> list[str]:
    """Feed ``text`` in chunks of ``step`` characters, as an LLM stream would."""
    splitter = SentenceSplitter(SplitterSettings(first_clause_min_words=min_words,
                                                 max_piece_chars=max_chars,
                                                 first_piece_max_chars=first_max_chars))
    pieces = []
    for i in range(0, len(text), step):
        pieces += splitter.feed(text[i : i + step])
    return pieces + splitter.flush()


@pytest.mark.parametrize("step", [1, 3, 7, 1000])
@pytest.mark.parametrize(
    "text, expected",
    [
        ("O Sr. João e a Dra. Maria vão te atender. Tudo bem?",
         ["O Sr. João e a Dra. Maria vão te atender.", "Tudo bem?"]),
        ("Fale com o Prof. Carlos. Ele sabe.", ["Fale com o Prof. Carlos.", "Ele sabe."]),
        ("O valor é R$ 1.234,56, tá? Pode pagar.", ["O valor é R$ 1.234,56, tá?", "Pode pagar."]),
        ("A taxa é 2.5 por cento. Certo.", ["A taxa é 2.5 por cento.", "Certo."]),
        ("Você é o 1º da fila e ela a 2ª. Aguarde.", ["Você é o 1º da fila e ela a 2ª.", "Aguarde."]),
        ("Hum... deixa eu ver. Achei!", ["Hum... deixa eu ver.", "Achei!"]),
        ("Espera… Pronto.", ["Espera…", "Pronto."]),
        ("Sério?! Que bom.", ["Sério?!", "Que bom."]),
        ('Ele disse "tudo certo." Depois saiu.', ['Ele disse "tudo certo."', "Depois saiu."]),
        ("Traga RG, CPF etc. e o comprovante. Obrigado.",
         ["Traga RG, CPF etc. e o comprovante.", "Obrigado."]),
        ("Use o n.º 123, p.ex. hoje. Ok", ["Use o n.º 123, p.ex. hoje.", "Ok"]),
        ("Primeira linha\nSegunda linha", ["Primeira linha", "Segunda linha"]),
        ("Custou 10. Depois 20.", ["Custou 10.", "Depois 20."]),
    ],
)
def test_sentences(text, expected, step):
    assert split(text, step) == expected


def test_numbers_never_split_even_with_early_clause():
    pieces = split("Seu saldo é de R$ 12.345,67 e vence dia 10, tá bom?", min_words=2)
    assert any("R$ 12.345,67" in p for p in pieces)
    assert all("12.345,67" in p or "345" not in p for p in pieces)
    read_out = split("O número é 123, 456, 789, confere?", min_words=2)
    assert any("123, 456, 789" in p for p in read_out)


@pytest.mark.parametrize("step", [1, 3, 200])
def test_number_words_joined_by_e_are_never_cut(step):
    text = "São cento e vinte e cinco reais e cinquenta centavos e vence amanhã."
    pieces = split(text, step=step, min_words=4, first_max_chars=60)
    assert pieces[0] == "São cento e vinte e cinco reais e cinquenta centavos", pieces
    # The clause rule still cuts where no number comes before "e".
    assert pieces[-1] == "e vence amanhã.", pieces


def test_first_piece_cut_early_at_a_clause():
    text = "Claro, posso verificar isso pra você agora mesmo, só um instante. Já volto."
    pieces = split(text, step=2, min_words=4)
    assert pieces[0] == "Claro, posso verificar isso pra você agora mesmo,"
    assert pieces[1:] == ["só um instante.", "Já volto."]
    # Not before the minimum word count: "Claro," alone is not cut.
    assert not pieces[0].endswith("Claro,")


def test_first_piece_cut_before_e_or_mas():
    pieces = split("Eu verifiquei a sua conta mas não achei a fatura.", step=1, min_words=4)
    assert pieces == ["Eu verifiquei a sua conta", "mas não achei a fatura."]
    # "e" must be a whole word: "ela" is not a clause start.
    pieces = split("Eu falei com a atendente ela disse que sim.", step=1, min_words=4)
    assert pieces == ["Eu falei com a atendente ela disse que sim."]


def test_only_the_first_piece_is_cut_early():
    pieces = split("Olha, eu vi aqui no sistema, e a sua fatura, de fato, venceu ontem.",
                   step=4, min_words=3)
    assert len(pieces) == 2
    assert "".join(pieces).replace(" ", "") == (
        "Olha, eu vi aqui no sistema, e a sua fatura, de fato, venceu ontem.".replace(" ", ""))


def test_run_on_is_cut_at_max_chars():
    text = "isso é uma frase muito longa sem ponto nenhum, " * 8
    pieces = split(text, step=5, max_chars=100)
    assert len(pieces) > 2
    assert all(len(p) <= 100 for p in pieces)


RUN_ON = ("O seu plano inclui internet de cem megas telefone fixo ilimitado para todo o Brasil "
          "e os canais de esporte que o senhor pediu na semana passada quando ligou para nós "
          "e também o desconto de fidelidade que vale por mais doze meses a partir de hoje. Obrigado.")


@pytest.mark.parametrize("step", [1, 4, 1000])
def test_first_piece_is_short_and_later_pieces_grow_with_what_was_said(step):
    pieces = split(RUN_ON, step=step, first_max_chars=60)
    assert " ".join(pieces) == RUN_ON
    assert len(pieces[0]) <= 60 and not pieces[0].endswith(" ")
    said = 0
    for piece in pieces:
        # each piece is at most as long as everything before it (or the first limit), so
        # its TTS is done while those play
        assert len(piece) <= (60 if not said else max(120, said)), (piece, said)
        said += len(piece)
    assert len(pieces[1]) > 0 and len(pieces) <= 6


@pytest.mark.parametrize("step", [1, 5, 1000])
def test_a_later_run_on_ends_at_a_clause_once_as_long_as_what_was_said(step):
    text = "Eu entendi o que deseja, ao que deseja, ao que deseja, ao que deseja, ao que deseja, ao que deseja."
    pieces = split(text, step=step, min_words=4, first_max_chars=60)
    assert pieces[0] == "Eu entendi o que deseja,"
    # the second piece stops at the first clause past the 24 characters said before it
    assert pieces[1] == "ao que deseja, ao que deseja,"
    assert " ".join(pieces) == text


def test_sentences_shorter_than_the_limits_are_not_cut():
    text = "Claro. Vou verificar a sua fatura de janeiro agora mesmo para o senhor. Um momento."
    assert split(text, first_max_chars=60) == [
        "Claro.", "Vou verificar a sua fatura de janeiro agora mesmo para o senhor.", "Um momento."]


def test_first_piece_limit_never_exceeds_max_piece_chars():
    text = "palavra " * 40
    assert len(split(text, max_chars=50, first_max_chars=90)[0]) <= 50


def test_reset_starts_a_new_reply():
    splitter = SentenceSplitter(SplitterSettings(first_clause_min_words=2))
    assert splitter.feed("Primeira resposta aqui, ") == []
    splitter.reset()
    assert splitter.pending == ""
    assert splitter.feed("Segunda resposta, com vírgula. ") == ["Segunda resposta,", "com vírgula."]


def test_waits_while_the_boundary_is_ambiguous():
    splitter = SentenceSplitter(SplitterSettings(first_clause_min_words=0, first_piece_max_chars=0))
    assert splitter.feed("Custa R$ 1.") == []  # "1." might be "1.234"
    assert splitter.feed("234,00 no total. ") == ["Custa R$ 1.234,00 no total."]
    assert splitter.feed("Fale com o Dr. ") == []  # a title never ends a sentence
    assert splitter.feed("Paulo amanhã.") == []
    assert splitter.flush() == ["Fale com o Dr. Paulo amanhã."]


def test_a_forced_cut_never_leaves_a_currency_sign_without_its_amount():
    # The demo's reply piece, once cut at "é de R$": the voice then said "de real, 89,90".
    splitter = SentenceSplitter(SplitterSettings(first_clause_min_words=0, first_piece_max_chars=32))
    pieces = splitter.feed("A fatura de janeiro é de R$ 89,90 e a de dezembro é de R$ 79,90.") + splitter.flush()
    assert " ".join(pieces) == "A fatura de janeiro é de R$ 89,90 e a de dezembro é de R$ 79,90.", pieces
    for amount in ("R$ 89,90", "R$ 79,90"):  # each amount whole, in one piece
        assert any(amount in p for p in pieces), pieces


def test_limits_count_an_amount_as_long_as_it_is_said():
    """'R$ 89,90' is 8 characters written and 39 said: a piece holding it is cut sooner, and
    never inside it."""
    splitter = SentenceSplitter(SplitterSettings(first_clause_min_words=0, first_piece_max_chars=32))
    pieces = splitter.feed("Olá! O total ficou em R$ 1.234,56 e vence amanhã, tá bom? ") + splitter.flush()
    assert any(p.endswith("R$ 1.234,56") or "R$ 1.234,56" in p for p in pieces), pieces
    assert not any(p.rstrip().endswith(("R$", "1.", "1.234", "1.234,5")) for p in pieces), pieces
