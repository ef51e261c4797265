"""Transcriber: one call's speech-to-text requests — a timeout (`conversation.timeouts.stt_s`),
timeouts and errors counted on the call record, Whisper's no-speech segments dropped. Used by the user-turn tracker (partials and
the final) and the barge-in controller (what the caller said over the agent)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from theo_ray.conversation.model_client import ModelClient
from theo_ray.conversation.records import CallRecord
from theo_ray.messages import TraceContext

NO_SPEECH_MAX = 0.8  # Whisper hallucinates on near-silence: drop segments it itself doubts


class Transcriber:
    def __init__(
        self, models: ModelClient, timeout_s: float, record: CallRecord, trace: Callable[[], TraceContext]
    ) -> None:
        self._models = models
        self._timeout_s = timeout_s
        self._record = record
        self._trace = trace

    async def transcribe(self, audio: np.ndarray) -> str:
        """The text of `audio` (16 kHz int16); "" when nothing was said or STT failed (counted)."""
        try:
            segments = await asyncio.wait_for(
                self._models.transcribe(audio, prompt="", trace=self._trace()), self._timeout_s
            )
        except asyncio.CancelledError:
            raise
        except asyncio.TimeoutError:
            self._record.count_timeout("stt")
            self._record.errors.append(f"stt: nothing for {self._timeout_s:.1f} s")
            return ""
        except Exception as exc:
            self._record.errors.append(f"stt: {type(exc).__name__}: {exc}")
            return ""
        return " ".join(s.text for s in segments if s.no_speech_prob < NO_SPEECH_MAX).strip()
