"""Locate data files inside installed packages without importing them.

Some model packages import heavy dependencies at import time (``silero_vad`` imports torch),
and per-call actors must not pay for that, so files are found through the import system's
metadata (``find_spec``) instead of ``importlib.resources``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from theo_ray.errors import ModelUnavailable


def package_dir(package: str) -> Path:
    """Directory of an installed top-level package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"package '{package}' is not installed; run the set-up command from the README"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(package: str, relative: str) -> Path:
    path = package_dir(package) / relative
    if not path.is_file():
        raise ModelUnavailable(f"'{relative}' is missing from package '{package}' (reinstall it)")
    return path
