"""PhraseBook: fillers, backchannels, emergency phrases and the greeting, pre-rendered once
per voice at start-up (by the CallSupervisor) so they play even when TTS is slow or down."""

from __future__ import annotations

import random

import msgspec
import numpy as np

from theo_ray.messages import SynthesizeRequest
from theo_ray.turn.fillers import BACKCHANNELS, EMERGENCY_PHRASES, THINKING_FILLERS


class PrerenderedPhrase(msgspec.Struct, frozen=True):
    text: str
    pcm: bytes  # int16 mono at the book's sample rate
    sample_rate: int

    def samples(self) -> np.ndarray:
        return np.frombuffer(self.pcm, dtype="<i2")


class PhraseBook(msgspec.Struct, frozen=True):
    voice: str
    sample_rate: int
    greeting: PrerenderedPhrase | None = None
    fillers: list[PrerenderedPhrase] = []
    backchannels: list[PrerenderedPhrase] = []
    emergency: dict[str, PrerenderedPhrase] = {}

    def pick(self, kind: str, rng: random.Random) -> PrerenderedPhrase | None:
        options = getattr(self, kind)
        return rng.choice(options) if options else None


async def _render(tts_handle, text: str, voice: str) -> PrerenderedPhrase:
    pcm, rate = [], 0
    async for chunk in tts_handle.options(stream=True).synthesize.remote(SynthesizeRequest(text=text, voice=voice)):
        pcm.append(chunk.pcm)
        rate = chunk.sample_rate
    return PrerenderedPhrase(text=text, pcm=b"".join(pcm), sample_rate=rate)


async def render_phrase_book(tts_handle, voice: str, greeting: str) -> PhraseBook:
    fillers = [await _render(tts_handle, t, voice) for t in THINKING_FILLERS]
    backchannels = [await _render(tts_handle, t, voice) for t in BACKCHANNELS]
    emergency = {key: await _render(tts_handle, t, voice) for key, t in EMERGENCY_PHRASES.items()}
    hello = await _render(tts_handle, greeting, voice) if greeting else None
    rate = fillers[0].sample_rate if fillers else 24000
    return PhraseBook(voice=voice, sample_rate=rate, greeting=hello, fillers=fillers,
                      backchannels=backchannels, emergency=emergency)
