"""`ModelHandles`: the typed bundle of Ray Serve handles to the three model deployments.

It lives here, beside the messages those handles carry, so the conversation layer and the
actors can name it without importing the runtime that deploys the models
(`theo_ray.runtime.serve_apps` builds it and re-exports it).
"""

from __future__ import annotations

from typing import Any

import msgspec


class ModelHandles(msgspec.Struct, frozen=True):
    """Handles a CallActor or the CLI uses; picklable, so they travel into actors."""

    stt: Any
    llm: Any
    tts: Any
    llm_fallback: Any = None  # the `theo-llm-fallback` application, when `llm.fallback` is set
