"""Fixtures for the turn-loop tests: model handles with the scripted LLM test double."""

from __future__ import annotations

import pytest

from theo_ray.runtime.serve_apps import ModelHandles


@pytest.fixture(scope="session")
def scripted_handles(model_handles, scripted_llm) -> ModelHandles:
    return ModelHandles(stt=model_handles.stt, llm=scripted_llm, tts=model_handles.tts)
