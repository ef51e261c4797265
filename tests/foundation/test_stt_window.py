"""The encoder window fitted to the audio (deployments/backends/faster_whisper_stt.py)."""

from __future__ import annotations

import numpy as np
import pytest

from theo_ray.deployments.backends.faster_whisper_stt import _window_frames
from theo_ray.config import SpeechToTextSettings
from theo_ray.errors import ConfigError


def _padded_features(content_frames: int, total: int = 3000) -> np.ndarray:
    # faster-whisper's pad_or_trim: real log-mel columns, then exact zeros up to 3000.
    features = np.zeros((80, total), np.float32)
    features[:, :content_frames] = np.random.default_rng(1).uniform(-1.5, 1.0, (80, content_frames))
    return features


def test_short_audio_gets_the_minimum_window():
    assert _window_frames(_padded_features(250), min_frames=1000, margin_frames=200) == 1000


def test_longer_audio_gets_its_content_plus_the_margin():
    assert _window_frames(_padded_features(1400), min_frames=1000, margin_frames=200) == 1600


def test_a_silent_column_inside_the_audio_is_content():
    features = _padded_features(1400)
    features[:, 1399] = -1.5  # digital silence on Whisper's scale is not padding
    features[:, 1300:1399] = 0.0  # a run of zero columns is only padding at the end
    assert _window_frames(features, min_frames=1000, margin_frames=200) == 1600


def test_the_window_never_exceeds_the_features():
    assert _window_frames(_padded_features(2950), min_frames=1000, margin_frames=200) == 3000
    assert _window_frames(np.zeros((80, 3000), np.float32), min_frames=1000, margin_frames=200) == 1000


@pytest.mark.parametrize(
    ("field", "value"), [("window_min_s", 0.5), ("window_min_s", 31.0), ("window_margin_s", -1.0), ("max_tokens_per_s", 0.0)]
)
def test_bad_window_settings_are_config_errors(field, value):
    with pytest.raises(ConfigError, match=f"stt.{field}"):
        SpeechToTextSettings(**{field: value})


def test_a_decoding_loop_is_told_from_fast_dictation():
    from theo_ray.deployments.backends.faster_whisper_stt import looks_like_a_loop

    loop = "Tá muito obrigado tchau e o que o que é o que é o que é o que é o que é o que"
    assert looks_like_a_loop(loop, audio_s=1.9, max_words_per_s=6.0)
    assert not looks_like_a_loop("nove nove nove nove oito oito oito oito", audio_s=2.8, max_words_per_s=6.0)
    assert not looks_like_a_loop("Oi boa tarde, eu quero saber o valor da minha fatura.", audio_s=3.2, max_words_per_s=6.0)


def test_the_full_window_copy_shares_the_weights():
    """The loop fallback decodes with the same loaded CTranslate2 model, Whisper's window."""
    from pathlib import Path

    from theo_ray.deployments.backends.faster_whisper_stt import FasterWhisperBackend
    from theo_ray.config import config_from_mapping

    config = config_from_mapping({})
    backend = FasterWhisperBackend(config.stt, Path(config.paths.model_cache).expanduser())
    assert backend.full_window_model.model is backend.model.model
    assert backend.model.fit_window and not backend.full_window_model.fit_window
    silence = np.zeros(16000, np.float32)
    # Beam 5 on digital silence writes "O que é o que é o que é...": decoded again, nothing left.
    segments, _redecoded = backend.transcribe_blocking(silence, "pt", "", False)
    assert segments == []


def test_the_same_words_over_and_over_are_a_loop_at_any_rate():
    from theo_ray.deployments.backends.faster_whisper_stt import looks_like_a_loop, repeated_run

    digits = "Meu CPF é 4, 5, 2, 3, 1, 8, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9"
    assert repeated_run(digits) == 10 and looks_like_a_loop(digits, audio_s=6.0, max_words_per_s=6.0)
    assert looks_like_a_loop("Éééééééééééééé Estão.", audio_s=3.0, max_words_per_s=6.0)
    # Seen on espeak-ng's voice in theo bench stt: hyphenated digits, a syllable held.
    assert looks_like_a_loop("Messepe, afia 4-5-2-3-8-9-9-9-9-9-9-9-9-9-9-9-9-9 Fiquem.", audio_s=6.0, max_words_per_s=6.0)
    assert looks_like_a_loop("A Tugamem, Sino Ghiabang, Githememememememememememem", audio_s=4.0, max_words_per_s=6.0)
    for speech in ("nove nove nove nove oito oito oito oito", "não, não, não, não", "Meu CPF é 000.111.222-33",
                   "o que é, o que é que você quer?", "Meu telefone é 11-9-8-7-6-5-4-3-2-1.", "sexta-feira"):
        assert repeated_run(speech) is None and not looks_like_a_loop(speech, audio_s=3.0, max_words_per_s=6.0)


def test_a_loop_the_full_window_repeats_too_is_cut_to_its_first_instance():
    from faster_whisper.transcribe import Segment, Word

    from theo_ray.deployments.backends.faster_whisper_stt import cut_repeated_run

    words = [Word(0.0, 1.0, w, 0.5) for w in " é 4, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9".split()]
    segments = [Segment(0, 0, 0.0, 1.0, " Meu CPF", [], -0.5, 1.0, 0.1, None, 0.0),
                Segment(1, 0, 1.0, 2.0, " é 4, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9", [], -0.5, 1.0, 0.1, words, 0.0)]
    cut = cut_repeated_run(segments)
    assert [s.text for s in cut] == [" Meu CPF", " é 4, 9,"]
    assert [w.word for w in cut[1].words] == ["é", "4,", "9,"]


def test_a_segment_invented_after_the_speech_is_dropped():
    """Measured on Whisper base with a prompt: 'Quero parcelar em três vezes.' then a segment
    'Jesus Jesus Jesus' squeezed into the audio's last hundredths of a second."""
    from faster_whisper.transcribe import Segment, Word

    from theo_ray.deployments.backends.faster_whisper_stt import without_invented_tail

    said = Segment(0, 0, 0.0, 1.82, " Quero parcelar em três vezes.", [], -0.1, 1.0, 0.004,
                   [Word(0.0, 0.4, " Quero", 0.95), Word(0.4, 1.04, " parcelar", 0.65), Word(1.04, 1.82, " vezes.", 0.99)], 0.0)
    invented = Segment(1, 0, 1.82, 2.46, " Jesus Jesus Jesus", [], -0.6, 1.0, 0.3,
                       [Word(1.82, 1.94, " Jesus", 0.01), Word(2.46, 2.46, " Jesus", 0.99), Word(2.46, 2.46, " Jesus", 0.99)], 0.0)
    unsure = Segment(1, 0, 1.96, 2.46, " O que?", [], -1.6, 1.0, 0.54,
                     [Word(1.96, 2.44, " O", 0.02), Word(2.44, 2.46, " que?", 0.23)], 0.0)
    real = Segment(1, 0, 1.9, 2.6, " Pode ser.", [], -0.3, 1.0, 0.05,
                   [Word(1.9, 2.2, " Pode", 0.8), Word(2.2, 2.6, " ser.", 0.9)], 0.0)
    assert without_invented_tail([said, invented]) == [said]
    assert without_invented_tail([said, real, unsure]) == [said, real]
    assert without_invented_tail([invented]) == [invented]  # the first segment always stays
    no_words = Segment(1, 0, 1.9, 2.6, " Pode ser.", [], -1.5, 1.0, 0.5, None, 0.0)
    assert without_invented_tail([said, no_words]) == [said, no_words]  # no timestamps: nothing to judge by
