"""Model assembly from registry packages: verified, atomic, fast when already done."""

from __future__ import annotations

import hashlib
import time

import pytest

from theo_ray.errors import ModelUnavailable
from theo_ray.models.assembly import assemble_parts
from theo_ray.models.package_files import package_dir
from theo_ray.models.whisper_assets import ensure_whisper_base


def test_assembly_checks_the_digest_and_is_atomic(tmp_path):
    parts = [tmp_path / "a", tmp_path / "b"]
    parts[0].write_bytes(b"x" * 1000)
    parts[1].write_bytes(b"y" * 500)
    good = hashlib.sha256(b"x" * 1000 + b"y" * 500).hexdigest()
    out = tmp_path / "cache" / "model.bin"
    with pytest.raises(ModelUnavailable, match="does not match"):
        assemble_parts(parts, out, "0" * 64)
    assert not out.exists() and not list(out.parent.glob("*.tmp*"))
    seen = []
    assert assemble_parts(parts, out, good, lambda done, total: seen.append((done, total))) == out
    assert out.read_bytes() == b"x" * 1000 + b"y" * 500 and seen[-1] == (1500, 1500)


def test_whisper_base_is_assembled_once(tmp_path):
    folder = ensure_whisper_base(tmp_path)
    assert (folder / "model.bin").stat().st_size > 140_000_000
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        assert (folder / name).is_file()
    started = time.perf_counter()
    ensure_whisper_base(tmp_path)
    assert time.perf_counter() - started < 1.0  # verified marker: no re-hash of 145 MB


def test_missing_package_is_a_clear_error():
    with pytest.raises(ModelUnavailable, match="not installed"):
        package_dir("theo_no_such_model_package")
