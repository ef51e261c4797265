"""Locate (or extract) the Smart Turn v3.2 ONNX model and verify it.

The model (BSD-2-Clause, by Daily) ships inside the ``pipecat-ai`` wheel at
``pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx``. Theo needs only that file, so:

1. an installed pipecat-ai (``pip install --no-deps pipecat-ai==PIPECAT_VERSION``) is found with
   ``find_spec`` on the top-level package — never imported, pipecat's imports need its deps;
2. otherwise a pipecat-ai wheel already in ``cache_dir`` is opened with ``zipfile`` and only
   the model is extracted;
3. otherwise, when ``allow_download`` is set, the wheel is fetched with ``pip download --no-deps``.

Whatever the source, the file's sha256 must match ``SMART_TURN_SHA256``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

from theo_ray.errors import ModelUnavailable

PIPECAT_VERSION = "1.14.0"
MODEL_MEMBER = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
MODEL_FILENAME = "smart-turn-v3.2-cpu.onnx"
SMART_TURN_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def installed_model_path() -> Path | None:
    """The model inside an installed pipecat-ai, if there is one (pipecat is not imported)."""
    try:
        spec = importlib.util.find_spec("pipecat")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    relative = Path(MODEL_MEMBER).relative_to("pipecat")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    return None


def extract_from_wheel(wheel: Path, cache_dir: Path) -> Path:
    """Extract only the model file from a pipecat-ai wheel into ``cache_dir``."""
    target = cache_dir / MODEL_FILENAME
    partial = target.with_suffix(".part")
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(MODEL_MEMBER) as src:
            with open(partial, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise ModelUnavailable(f"cannot extract {MODEL_MEMBER} from {wheel}: {exc}") from exc
    partial.replace(target)  # atomic: a half-written file never looks like the model
    return target


def download_wheel(cache_dir: Path, version: str = PIPECAT_VERSION) -> Path:
    """``pip download --no-deps pipecat-ai==version`` into ``cache_dir`` (blocking; seconds)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               f"pipecat-ai=={version}", "-d", str(cache_dir)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    wheels = sorted(cache_dir.glob(f"pipecat_ai-{version}-*.whl"))
    if result.returncode != 0 or not wheels:
        raise ModelUnavailable(f"pip download pipecat-ai=={version} failed: {result.stderr[-400:]}")
    return wheels[-1]


def _verified(path: Path) -> Path:
    actual = sha256_of(path)
    if actual != SMART_TURN_SHA256:
        raise ModelUnavailable(
            f"{path}: sha256 {actual} does not match Smart Turn v3.2 ({SMART_TURN_SHA256})"
        )
    return path


def ensure_smart_turn_model(cache_dir: str | Path, allow_download: bool = False) -> Path:
    """Path of a verified Smart Turn v3.2 model; blocking (hashing 8.7 MB, maybe a download).

    Call it at model assembly, not on a call's event loop.
    """
    cache = Path(cache_dir).expanduser()
    cached = cache / MODEL_FILENAME
    if cached.is_file() and sha256_of(cached) == SMART_TURN_SHA256:
        return cached
    installed = installed_model_path()
    if installed is not None:
        return _verified(installed)
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("pipecat_ai-*.whl"))
    if wheels:
        return _verified(extract_from_wheel(wheels[-1], cache))
    if allow_download:
        return _verified(extract_from_wheel(download_wheel(cache), cache))
    raise ModelUnavailable(
        "Smart Turn model not found: install it with "
        f"`pip install --no-deps pipecat-ai=={PIPECAT_VERSION}` or put the wheel in {cache}"
    )
