from theo_ray.turn.meta_text import BracketFilter


def test_the_interruption_mark_the_model_imitates_is_never_said():
    meta = BracketFilter()
    deltas = ["Tudo ótimo, Carlos! [interr", 'ompido em: "', '—"]', " Até logo."]
    assert "".join(meta.feed(d) for d in deltas) == "Tudo ótimo, Carlos!  Até logo."
    assert meta.dropped == 1 and not meta.open


def test_an_unclosed_bracket_drops_the_rest():
    meta = BracketFilter()
    assert meta.feed("Claro. [nota: ") + meta.feed("isso continua") == "Claro. "
    assert meta.open
