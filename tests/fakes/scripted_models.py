"""ScriptedModels: the CallActor's ModelClient with scripted STT, LLM and TTS streams.

Test double for the three deployments (the real ones need Ray and model files: see
tests/conversation). Same interface as `theo_ray.conversation.model_client.ModelClient`;
streams are async iterators with `cancel()`, as Ray Serve's response generators are, and
every delay runs on the loop's clock (virtual time in the fast tests).
- STT: the scripted caller's decoder (a perfect ear) after `stt_delay_s`; `stt_down` raises.
  Every request's (text heard, hint) is kept (`hinted`); words carry probability 0.95, and the words with a
  digit in them `stt_digit_probability` (a dictated number the decoder is unsure of).
- LLM: the first rule whose regex matches the last caller message gives the reply (and
  optionally a tool call), one word every `token_delay_s`; `hang` never answers; `fail`
  raises after the first words. With `fallback_rules`, a second model (`llm.fallback`).
- Breakers: in-process (`LocalBreakers`), as a call whose supervisor is gone has.
- TTS: a 440 Hz tone, `ms_per_char` per character, in 100 ms chunks, the first after
  `tts_first_delay_s`; with `tts_hang_after_chunks` it goes quiet after that many.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import msgspec
import numpy as np

from theo_ray.conversation.model_client import FALLBACK_LLM, PRIMARY_LLM, LocalBreakers
from theo_ray.messages import (GenerateRequest, LlmDelta, Segment, SynthesizeRequest, ToolCall, TraceContext, TtsChunk,
                               Word)
from tests.fakes.scripted_caller import RATE, ScriptedCaller


class Rule(msgspec.Struct, frozen=True):
    match: str
    reply: str
    tool: ToolCall | None = None
    hang: bool = False
    fail: bool = False


class StreamCancelled(Exception):
    """What iterating a cancelled stream raises (Ray raises its own cancellation error)."""


class ScriptedStream:
    def __init__(self, source: AsyncIterator) -> None:
        self._source = source
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __aiter__(self) -> ScriptedStream:
        return self

    async def __anext__(self):
        if self.cancelled:
            raise StreamCancelled()
        item = await self._source.__anext__()
        if self.cancelled:
            raise StreamCancelled()
        return item


class ScriptedModels:
    def __init__(
        self,
        caller: ScriptedCaller,
        rules: list[Rule],
        default_reply: str = "Desculpa, não entendi.",
        stt_delay_s: float = 0.15,
        token_delay_s: float = 0.03,
        tts_first_delay_s: float = 0.2,
        ms_per_char: float = 60.0,
        tts_hang_after_chunks: int | None = None,
        fallback_rules: list[Rule] | None = None,
        breakers=None,
        stt_down: bool = False,
        stt_logprob: float = -0.1,  # Whisper's avg_logprob for every segment (confidence)
        stt_digit_probability: float = 0.95,  # the probability of every word with a digit in it
        stt_word_probability: float = 0.95,  # ... and of every other word
    ) -> None:
        self.caller = caller
        self.rules = [(re.compile(r.match, re.IGNORECASE), r) for r in rules]
        self.default_reply = default_reply
        self.stt_delay_s = stt_delay_s
        self.stt_word_probability = stt_word_probability
        self.token_delay_s = token_delay_s
        self.tts_first_delay_s = tts_first_delay_s
        self.ms_per_char = ms_per_char
        self.tts_hang_after_chunks = tts_hang_after_chunks  # a TTS that goes quiet mid-stream
        # A second language model (the `llm.fallback` application): its own rules.
        self.fallback_rules = None if fallback_rules is None else [(re.compile(r.match, re.IGNORECASE), r) for r in fallback_rules]
        self.breakers = breakers or LocalBreakers()
        self.stt_down = stt_down  # every transcription raises (a dead STT replica)
        self.stt_logprob = stt_logprob
        self.stt_digit_probability = stt_digit_probability
        self.hinted: list[tuple[str, str]] = []  # every transcription's (text, hint), in order
        self.transcribed: list[str] = []
        self.generated: list[GenerateRequest] = []
        self.generated_by: list[str] = []  # which model each request went to
        self.synthesized: list[str] = []

    async def transcribe(
        self, audio16: np.ndarray, prompt: str = "", trace: TraceContext = TraceContext(), hint: str = ""
    ) -> list[Segment]:
        await asyncio.sleep(self.stt_delay_s)
        if self.stt_down:
            raise RuntimeError("scripted STT replica died")
        text = self.caller.decode_text(audio16)
        self.transcribed.append(text)
        self.hinted.append((text, hint))
        if not text:
            return []
        end = len(audio16) / RATE
        words = [Word(w, 0.0, end, self.stt_digit_probability if any(c.isdigit() for c in w) else self.stt_word_probability)
                 for w in text.split()]
        return [Segment(text=text, start=0.0, end=end, avg_logprob=self.stt_logprob, no_speech_prob=0.01, words=words,
                        min_word_probability=min(w.probability for w in words))]

    def language_models(self) -> list[str]:
        return [PRIMARY_LLM] if self.fallback_rules is None else [PRIMARY_LLM, FALLBACK_LLM]

    def generate(self, request: GenerateRequest, model: str = PRIMARY_LLM) -> ScriptedStream:
        self.generated.append(request)
        self.generated_by.append(model)
        rules = self.fallback_rules if model == FALLBACK_LLM else self.rules
        last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        rule = next((r for pattern, r in rules if pattern.search(last)), Rule(match="", reply=self.default_reply))
        return ScriptedStream(self._generate(rule))

    async def _generate(self, rule: Rule) -> AsyncIterator[LlmDelta]:
        if rule.hang:
            await asyncio.Event().wait()
        words = rule.reply.split()
        for i, word in enumerate(words):
            await asyncio.sleep(self.token_delay_s)
            if rule.fail and i == 2:
                raise RuntimeError("scripted LLM failure")
            yield LlmDelta(text=(" " if i else "") + word)
        if rule.tool is not None:
            yield LlmDelta(tool_call=rule.tool)
        yield LlmDelta(finish_reason="stop", completion_tokens=len(words))

    def synthesize(self, request: SynthesizeRequest) -> ScriptedStream:
        self.synthesized.append(request.text)
        return ScriptedStream(self._synthesize(request.text))

    async def _synthesize(self, text: str) -> AsyncIterator[TtsChunk]:
        n = int(len(text) * self.ms_per_char * RATE / 1000)
        t = np.arange(n) / RATE
        tone = (2000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        await asyncio.sleep(self.tts_first_delay_s)
        step = RATE // 10
        for i, start in enumerate(range(0, n, step)):
            if i == self.tts_hang_after_chunks:
                await asyncio.Event().wait()
            if i:
                await asyncio.sleep(0.05)  # twice real time
            yield TtsChunk(pcm=tone[start : start + step].tobytes(), sample_rate=RATE, index=i)
