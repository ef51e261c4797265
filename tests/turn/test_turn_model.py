import asyncio
import zipfile

import numpy as np
import pytest

from theo_ray.errors import ModelUnavailable
from theo_ray.turn import turn_model_assets as assets
from theo_ray.turn.turn_model import SmartTurn


@pytest.fixture(scope="module")
def smart_turn():
    return SmartTurn()


def test_installed_model_is_found_and_verified(tmp_path):
    path = assets.ensure_smart_turn_model(tmp_path)
    assert path.name == assets.MODEL_FILENAME
    assert assets.sha256_of(path) == assets.SMART_TURN_SHA256


def test_model_is_extracted_from_a_wheel_in_the_cache(tmp_path, monkeypatch):
    """A wheel built from the real model file; `installed_model_path` is forced to None (fault
    injection: the machine has pipecat-ai installed, CI might not)."""
    source = assets.installed_model_path()
    assert source is not None, "pipecat-ai must be installed (--no-deps) for the turn model"
    wheel = tmp_path / f"pipecat_ai-{assets.PIPECAT_VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(source, assets.MODEL_MEMBER)
        archive.writestr("pipecat/__init__.py", "")
    monkeypatch.setattr(assets, "installed_model_path", lambda: None)
    path = assets.ensure_smart_turn_model(tmp_path)
    assert path == tmp_path / assets.MODEL_FILENAME
    assert assets.sha256_of(path) == assets.SMART_TURN_SHA256
    # Second call: served from the cache even without the wheel.
    wheel.unlink()
    assert assets.ensure_smart_turn_model(tmp_path) == path


def test_a_tampered_model_is_refused(tmp_path, monkeypatch):
    wheel = tmp_path / "pipecat_ai-0.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(assets.MODEL_MEMBER, b"not the model")
    monkeypatch.setattr(assets, "installed_model_path", lambda: None)
    with pytest.raises(ModelUnavailable, match="sha256"):
        assets.ensure_smart_turn_model(tmp_path)


def test_nothing_available_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "installed_model_path", lambda: None)
    with pytest.raises(ModelUnavailable, match="pip install --no-deps pipecat-ai"):
        assets.ensure_smart_turn_model(tmp_path / "empty")


def test_features_have_the_model_shape(smart_turn, speak):
    features = smart_turn.features(speak("Olá."))
    assert features.shape == (80, 800) and features.dtype == np.float32
    # Short audio is padded at the front: the speech sits at the end of the 8 s window.
    assert features[:, :400].std() < features[:, -50:].std()


def test_probability_is_in_range_and_separates_complete_from_cut(smart_turn, speak):
    """espeak speech: a complete request vs. one that trails off on a held filler. Both get
    the 200 ms of silence the endpointer would have seen."""
    silence = np.zeros(3200, np.float32)
    complete = smart_turn.predict(np.concatenate([speak("Quero falar com o suporte técnico."),
                                                  silence]))
    cut = smart_turn.predict(np.concatenate([speak("Eu quero falar com, hummmmm"), silence]))
    print(f"\nSmartTurn: complete p={complete.probability:.3f} ({complete.ms:.0f} ms), "
          f"cut p={cut.probability:.3f} ({cut.ms:.0f} ms)")
    for prediction in (complete, cut):
        assert 0.0 <= prediction.probability <= 1.0
        assert prediction.ms > 0
    assert complete.probability > 0.5 > cut.probability


async def test_predict_async_runs_in_an_executor(smart_turn, speak):
    audio = np.round(speak("Obrigado, tchau.") * 32767).astype(np.int16)
    as_bytes, as_array = await asyncio.gather(smart_turn.predict_async(audio.tobytes()),
                                              smart_turn.predict_async(audio))
    assert as_bytes.probability == pytest.approx(as_array.probability, abs=1e-6)
