"""PhraseBook: fillers, backchannels, emergency phrases and the greeting, pre-rendered once
per voice at start-up (by the CallSupervisor) so they play even when TTS is slow or down."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

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


async def load_or_render_phrase_book(tts_handle, voice: str, greeting: str, cache_dir: Path) -> PhraseBook:
    """The phrase book from the disk cache (keyed by voice and every text), else rendered
    and saved: a restart does not re-synthesise ~15 phrases (a minute on 2 busy cores)."""
    texts = [voice, greeting, *THINKING_FILLERS, *BACKCHANNELS, *EMERGENCY_PHRASES.values()]
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = Path(cache_dir).expanduser() / "phrases" / f"{voice or 'default'}-{key}.msgpack"
    if path.is_file():
        try:
            return msgspec.msgpack.decode(path.read_bytes(), type=PhraseBook)
        except msgspec.DecodeError:
            path.unlink(missing_ok=True)  # a torn write: render again
    book = await render_phrase_book(tts_handle, voice, greeting)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.msgpack.encode(book))
    tmp.replace(path)
    return book
