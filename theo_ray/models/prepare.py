"""Model assembly: everything a node needs on disk before the deployments start.

Run by `theo up` (and `theo models prepare`) in the driver; the replicas call the same
`ensure_*` functions, which are no-ops once the cache is verified, so re-running set-up
costs seconds when nothing changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from theo_ray.config import TheoConfig


class PreparedModel(msgspec.Struct, frozen=True):
    name: str
    path: str
    seconds: float


def prepare_models(config: TheoConfig, say: Callable[[str], None] = print) -> list[PreparedModel]:
    # The asset functions live below the deployments that load the files, so preparing
    # never imports a backend or its engine.
    from theo_ray.models.kokoro_model import ensure_kokoro_model
    from theo_ray.models.kokoro_voices import ensure_portuguese_voices
    from theo_ray.models.llm_assets import resolve_gguf_model, resolve_llm_model
    from theo_ray.models.whisper_assets import resolve_whisper_model
    from theo_ray.turn.turn_model_assets import ensure_smart_turn_model

    cache = config.model_cache()
    steps: list[tuple[str, Callable[[], object]]] = [
        ("speech-to-text (Whisper base)", lambda: resolve_whisper_model(config.stt.model, cache)),
        ("turn model (Smart Turn v3.2)", lambda: ensure_smart_turn_model(cache / "smart-turn")),
    ]
    if config.tts.backend == "kokoro":
        steps.append(("text-to-speech (Kokoro-82M int8)", lambda: ensure_kokoro_model(cache)))
        steps.append(("pt-BR voices (Kokoro, npm kokoro-js)", lambda: ensure_portuguese_voices(cache, say)))
    if config.llm.backend == "llama_cpp":
        steps.append(("language model (llama.cpp GGUF)", lambda: resolve_gguf_model(config.llm.model, cache, say)))
    if config.llm.backend == "vllm":
        steps.append(("language model", lambda: resolve_llm_model(config.llm.model, cache, say)))
    done = []
    for n, (name, step) in enumerate(steps, start=1):
        started = time.perf_counter()
        say(f"[{n}/{len(steps)}] {name} ...")
        path = step()
        elapsed = time.perf_counter() - started
        say(f"      ready in {elapsed:.1f} s: {path}")
        done.append(PreparedModel(name=name, path=str(path), seconds=elapsed))
    return done
