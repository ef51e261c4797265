"""Which model backends exist: for each kind (stt, llm, tts), config name -> its class.

The classes live in `deployments/backends` and load heavy engines (CTranslate2, llama.cpp,
vLLM, onnxruntime, torch), so they are named here as "module:Class" strings and imported
only when a replica chooses one. The table sits below the config, which checks
`<kind>.backend` against it at load time without importing any engine. Each class meets
its kind's Protocol in `deployments/backends/protocols.py` and is built as
`Class(settings, cache_dir)`.

Adding a backend: its file in `deployments/backends/` and one line here.
"""

from __future__ import annotations

import importlib
from typing import Any

from theo_ray.errors import ConfigError

BACKENDS: dict[str, dict[str, str]] = {
    "stt": {
        "faster-whisper": "theo_ray.deployments.backends.faster_whisper_stt:FasterWhisperBackend",
    },
    "llm": {
        "llama_cpp": "theo_ray.deployments.backends.llama_cpp_engine:LlamaCppBackend",
        "vllm": "theo_ray.deployments.backends.vllm_engine:VllmBackend",
        "scripted": "theo_ray.deployments.backends.scripted_llm:ScriptedBackend",  # a test double
    },
    "tts": {
        "kokoro": "theo_ray.deployments.backends.kokoro_tts:KokoroBackend",
        "espeak": "theo_ray.deployments.backends.espeak_tts:EspeakBackend",
        "xtts": "theo_ray.deployments.backends.xtts_tts:XttsBackend",  # the `gpu` extra
    },
}


def check_backend(kind: str, name: str) -> None:
    """Raise ConfigError at `<kind>.backend` unless `name` is a registered backend."""
    if name not in BACKENDS[kind]:
        known = ", ".join(repr(n) for n in sorted(BACKENDS[kind]))
        raise ConfigError(f"{kind}.backend", f"unknown backend {name!r}; known: {known}")


def backend_class(kind: str, name: str) -> Any:
    """The class registered as `name` for `kind`, imported now (and its module with it)."""
    check_backend(kind, name)
    module, _, attribute = BACKENDS[kind][name].partition(":")
    return getattr(importlib.import_module(module), attribute)
