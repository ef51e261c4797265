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
