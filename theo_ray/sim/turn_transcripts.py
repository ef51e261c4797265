"""The words of each turn of a recorded call, through an injected async STT callable.

:func:`transcribe_agent_turns` / :func:`transcribe_caller_turns` cut each turn that
:mod:`theo_ray.sim.analysis` found out of its track (with a little padding) and hand it to a
:data:`Transcriber`; the simulator passes our STT deployment, tests pass a double.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
import numpy as np

from theo_ray.sim.analysis import CallAnalysis
from theo_ray.sim.recording import CallRecording


Transcriber = Callable[[np.ndarray, int], Awaitable[str]]
"""async (int16 mono samples, sample rate) -> text; the simulator passes our STT deployment here."""


class TurnText(msgspec.Struct, frozen=True):
    index: int
    start_ms: float
    end_ms: float
    text: str


async def transcribe_agent_turns(
    recording: CallRecording, analysis: CallAnalysis, transcribe: Transcriber, pad_ms: int = 150
) -> list[TurnText]:
    """The agent's words per agent turn (rx track), for expectation checks and the transcript."""
    spans = [(t.index, t.start_ms, t.end_ms) for t in analysis.agent_turns]
    return await _transcribe(recording, "rx", spans, transcribe, pad_ms)


async def transcribe_caller_turns(
    recording: CallRecording, analysis: CallAnalysis, transcribe: Transcriber, pad_ms: int = 150
) -> list[TurnText]:
    """The caller's words per caller turn (tx track), when the scenario played WAVs without text."""
    spans = [(t.index, t.start_ms, t.end_ms) for t in analysis.caller_turns]
    return await _transcribe(recording, "tx", spans, transcribe, pad_ms)


async def _transcribe(
    recording: CallRecording,
    track: Literal["tx", "rx"],
    spans: list[tuple[int, float, float]],
    transcribe: Transcriber,
    pad_ms: int,
) -> list[TurnText]:
    samples = recording.track(track)
    rate = recording.sample_rate
    out: list[TurnText] = []
    for index, start, end in spans:
        lo = max(0, int((start - pad_ms) * rate / 1000))
        hi = min(len(samples), int((end + pad_ms) * rate / 1000))
        text = await transcribe(samples[lo:hi], rate)
        out.append(TurnText(index, start, end, text.strip()))
    return out
