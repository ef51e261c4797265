"""`theo bench stt`'s corpus, judge and line rendering, without a model (fast)."""

from __future__ import annotations

import numpy as np
import pytest

from theo_ray.bench.stt_bench import parse_setting, select
from theo_ray.bench.stt_judge import judge, load_corpus, missed_keys, normalised_text
from theo_ray.bench.stt_render import DEFAULT_CONDITIONS, over_line


@pytest.mark.parametrize(("spoken", "written"), [
    ("O valor foi cento e vinte e nove reais e noventa centavos.", "O valor foi R$ 129,90."),
    ("Eu pago setenta e nove e noventa.", "Eu pago 79,90."),
    ("Meu CPF é quatro cinco dois, três um oito, nove nove zero, dezessete.", "Meu CPF é 452.318.990-17."),
    ("Um, um, meia, dois, sete.", "11 627"),
    ("Avenida Brasil, mil e quarenta, apartamento trinta e dois.", "Avenida Brasil 1040, apartamento 32"),
    ("dois mil e vinte e cinco", "2025"),
    ("O desconto de dez por cento.", "O desconto de 10%."),
    ("Ah, tá, e a segunda via?", "Tá, e a 2ª via?"),
    ("Quanto fica o Turbo Wi-Fi?", "quanto fica o turbo wifi"),
])
def test_a_number_said_in_words_is_the_number_written_in_digits(spoken, written):
    assert normalised_text(spoken) == normalised_text(written)


def test_meia_is_six_only_among_numbers():
    assert normalised_text("oito meia três") == "8 6 3"
    assert normalised_text("meia hora") == "meia hora"


def test_a_missed_entity_loses_the_meaning_even_at_a_low_wer():
    reference = "Meu CPF é quatro cinco dois, três um oito, nove nove zero, dezessete."
    j = judge(reference, ["452318990 17"], "Meu CPF é 452.318.990-71.")
    assert j.errors == 2 and j.reference_words == 14 and j.meaning_lost
    assert not judge(reference, ["452318990 17"], "meu CPF é 452 318 990 17").meaning_lost
    assert missed_keys(["turbo wi fi|turbo wifi"], "o turbo wifi") == []


def test_the_corpus_covers_what_callers_say():
    corpus = load_corpus()
    assert len(corpus.utterances) >= 80
    assert len({u.id for u in corpus.utterances}) == len(corpus.utterances)
    kinds = {u.kind for u in corpus.utterances}
    assert {"question", "number", "dictation", "address", "name", "date", "money", "plan", "correction", "short",
            "hesitation"} <= kinds
    for u in corpus.utterances:
        assert u.keys, u.id
        assert not missed_keys(u.keys, u.text), u.id  # every key is in its own reference
    assert len(select(corpus, per_kind=1)) == len(kinds)


def test_settings_are_presets_and_stt_keys():
    assert parse_setting("beam5+hotwords") == ({"beam_size": 5, "vocabulary": "hotwords"}, "")
    assert parse_setting("window_min_s=30+hints") == ({"window_min_s": 30}, "hints")
    assert parse_setting("beam5+asked") == ({"beam_size": 5}, "asked")
    for bad in ("beam7", "no_such_key=1"):
        with pytest.raises(ValueError):
            parse_setting(bad)


@pytest.mark.parametrize("condition", DEFAULT_CONDITIONS)
def test_every_line_delivers_the_utterance_at_16_khz(condition):
    t = np.arange(24000 * 2) / 24000
    pcm = (8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    audio, figures = over_line(pcm, condition, seed=3)
    assert audio.dtype == np.int16
    assert abs(audio.size / 16000 - (2.0 + 0.5)) < 0.1  # the speech, 200 ms before, 300 ms after
    if condition.endswith("loss2"):
        assert figures.dropped > 0 and figures.concealed_frames >= figures.dropped
    else:
        assert figures.dropped == 0 and figures.concealed_frames == 0
    if "snr" in condition:
        again, _ = over_line(pcm, condition, seed=3)
        assert np.array_equal(audio, again)  # seeded: the same noise every run
