"""Transcriber: one call's speech-to-text requests — a timeout (`conversation.timeouts.stt_s`),
timeouts and errors counted on the call record, Whisper's no-speech segments dropped, the hint
(what the agent just asked, `stt_hint.py`) on every request. Used by the user-turn tracker
(partials and the final) and the barge-in controller (what the caller said over the agent)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec
import numpy as np

from theo_ray.conversation.model_client import ModelClient
from theo_ray.conversation.records import CallRecord
from theo_ray.messages import TraceContext, Word

NO_SPEECH_MAX = 0.8  # Whisper hallucinates on near-silence: drop segments it itself doubts


class Transcript(msgspec.Struct, frozen=True):
    text: str
    # Whisper's confidence: the duration-weighted mean of the kept segments' avg_logprob
    # (0.0 when nothing was said); a low one asks the caller to repeat (turn loop).
    logprob: float = 0.0
    # The kept segments' words with the decoder's probability of each (a dictated digit heard
    # at 0.3 is a guess: readback.py); [] without word timestamps.
    words: list[Word] = []


class SpeechToTextFailed(Exception):
    """A final transcription failed or timed out (STT down or stuck): the turn machine says
    "please repeat" once, and after `consecutive` >= 2 the emergency phrase and a human."""

    def __init__(self, why: str, consecutive: int) -> None:
        super().__init__(why)
        self.consecutive = consecutive


class Transcriber:
    def __init__(
        self, models: ModelClient, timeout_s: float, record: CallRecord, trace: Callable[[], TraceContext],
        hint: Callable[[], str] = lambda: "",
    ) -> None:
        self._models = models
        self._hint = hint  # read at each request: the agent may have asked something new
        self._timeout_s = timeout_s
        self._record = record
        self._trace = trace
        self.final_failures = 0  # in a row

    async def transcribe(self, audio: np.ndarray, final: bool = False) -> Transcript:
        """The text of `audio` (16 kHz int16); "" when nothing was said. A failure (counted)
        gives "" for a partial and raises SpeechToTextFailed for a `final` transcript: an
        empty final would be taken for noise, and the caller would never be answered."""
        try:
            segments = await asyncio.wait_for(
                self._models.transcribe(audio, prompt="", trace=self._trace(), hint=self._hint()), self._timeout_s
            )
        except asyncio.CancelledError:
            raise
        except asyncio.TimeoutError:
            self._record.count_timeout("stt")
            return self._failed(f"stt: nothing for {self._timeout_s:.1f} s", final)
        except Exception as exc:
            return self._failed(f"stt: {type(exc).__name__}: {exc}", final)
        if final:
            self.final_failures = 0
        kept = [s for s in segments if s.no_speech_prob < NO_SPEECH_MAX]
        weight = sum(max(s.end - s.start, 0.01) for s in kept)
        logprob = sum(s.avg_logprob * max(s.end - s.start, 0.01) for s in kept) / weight if kept else 0.0
        words = [w for s in kept for w in s.words]
        return Transcript(" ".join(s.text for s in kept).strip(), round(logprob, 3), words)

    def _failed(self, why: str, final: bool) -> Transcript:
        self._record.errors.append(why)
        if not final:
            return Transcript("")
        self.final_failures += 1
        raise SpeechToTextFailed(why, self.final_failures)
