import pytest

from theo_ray.turn.backchannel import BackchannelDetector
from theo_ray.turn.settings import BackchannelSettings


@pytest.mark.parametrize("text, speech_ms, kind", [
    ("uhum", 400, "backchannel"),
    ("Aham.", 350, "backchannel"),
    ("sei", 300, "backchannel"),
    ("tá, tá bom", 700, "backchannel"),
    ("Ok.", 250, "backchannel"),
    ("hum", 90, "noise"),  # too short to be speech: a click or a cough
    ("", 400, "noise"),
    ("", 60, "noise"),
    ("Obrigado.", 200, "noise"),  # what Whisper writes for a breath
    ("não", 300, "interruption"),
    ("espera aí", 500, "interruption"),
    ("uhum, mas e a fatura?", 900, "interruption"),
    ("quero falar com um atendente", 1100, "interruption"),
    ("uhum uhum uhum uhum", 1000, "interruption"),  # more words than a backchannel has
    ("uhum", 1500, "interruption"),  # too long for a backchannel
])
def test_classification(text, speech_ms, kind):
    detector = BackchannelDetector()
    verdict = detector.classify(text, speech_ms)
    assert verdict.kind == kind, verdict
    assert verdict.reason
    assert getattr(detector.stats, kind) == 1


def test_early_verdict_from_vad_alone():
    detector = BackchannelDetector(BackchannelSettings(max_backchannel_ms=800))
    assert detector.early_verdict(300).kind == "undecided"
    assert detector.early_verdict(900).kind == "interruption"


# Transcripts and mean word probabilities measured with the packaged Whisper on Kokoro
# voices over G.711 (misheard acknowledgements vs real short interruptions).
@pytest.mark.parametrize("text, speech_ms, probability, kind", [
    ("Nair dos", 700, 0.16, "backchannel"),  # "Aham."
    ("Entengue.", 900, 0.45, "backchannel"),  # "Entendi."
    ("É a vatói!", 700, 0.27, "backchannel"),  # "Ha ha, tá."
    ("Ha ha, tá.", 700, 0.9, "backchannel"),  # laughter is an acknowledgement
    ("Qual o preço?", 900, 0.77, "interruption"),
    ("Quero cancelar.", 1000, 0.94, "interruption"),
    ("Não me paga.", 1000, 0.21, "interruption"),  # a stop word whatever the confidence
    ("Nair dos", 700, None, "interruption"),  # no word probabilities: the words decide
    ("Nair dos", 1300, 0.16, "interruption"),  # too long for a backchannel
])
def test_unsure_words_in_a_short_burst_are_an_acknowledgement(text, speech_ms, probability, kind):
    verdict = BackchannelDetector().classify(text, speech_ms, probability)
    assert verdict.kind == kind, verdict


def test_the_unsure_words_rule_can_be_turned_off():
    detector = BackchannelDetector(BackchannelSettings(min_content_word_probability=0.0))
    assert detector.classify("Nair dos", 700, 0.16).kind == "interruption"
