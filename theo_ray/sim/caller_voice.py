"""The simulated caller's voice: a scenario utterance -> int16 PCM at 24 kHz.

Text is spoken in pt-BR by Kokoro (the same in-process backend the agent's TTS deployment
uses, so Whisper understands it) with a voice other than the agent's (Kokoro's pt-BR male
``pm_alex`` against the agent's female ``pf_dora``), so caller and agent are told apart by ear
in the stereo recording.
Rendered text is cached as WAV files named by a hash of (text, voice, speed): a scenario
replayed a hundred times in a load test synthesises each sentence once. WAV utterances are
read as they are and resampled (soxr) to the voice's rate. A dictated utterance (``parts``)
becomes one PCM with the configured silences between its parts.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
import numpy as np
import soundfile
import soxr

from theo_ray.sim.scenario import Utterance, UtterancePart

SAMPLE_RATE = 24000  # Kokoro's output rate; everything this module returns is at this rate

# async (text, voice, speed) -> int16 chunks at SAMPLE_RATE; KokoroBackend.synthesize fits.
Synthesize = Callable[[str, str, float], AsyncIterator[np.ndarray]]


class CallerVoiceSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # A Kokoro voice that is not the agent's default (pf_dora).
    voice: str = "pm_alex"
    speed: float = 1.0
    # Kokoro pads its output (measured ~0.3 s before and ~0.65 s after the speech). Synthesised
    # text is trimmed to where the signal first/last reaches this level, keeping the margins
    # below, so a barge-in "800 ms into the agent's turn" is the caller's *voice* at 800 ms and
    # a dictation pause is the pause the scenario asks for. None keeps the padding.
    trim_below_dbfs: float | None = -50.0
    trim_lead_ms: int = 10
    trim_tail_ms: int = 60


class CallerVoiceStats(msgspec.Struct):
    synthesised: int = 0
    cache_hits: int = 0
    wavs_read: int = 0
    # Cache files that could not be read back (re-synthesised and overwritten).
    cache_unreadable: int = 0


class CallerVoice:
    """Renders utterances; Kokoro is loaded on the first text that is not cached."""

    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        cache_dir: str | Path,
        settings: CallerVoiceSettings = CallerVoiceSettings(),
        model_cache_dir: str | Path = "~/.cache/theo",
        synthesize: Synthesize | None = None,
    ) -> None:
        self.settings = settings
        self.cache_dir = Path(cache_dir).expanduser()
        self.model_cache_dir = Path(model_cache_dir).expanduser()
        self.stats = CallerVoiceStats()
        self._synthesize = synthesize
        self._lock = asyncio.Lock()  # one synthesis at a time: Kokoro has one ONNX session

    # ------------------------------------------------------------ public

    async def render(self, utterance: Utterance) -> np.ndarray:
        """The whole utterance (parts joined by their pauses) as int16 mono at 24 kHz."""
        pieces: list[np.ndarray] = []
        for part, pause_ms in utterance.pieces():
            pieces.append(await self.render_part(part))
            if pause_ms:
                pieces.append(np.zeros(SAMPLE_RATE * pause_ms // 1000, np.int16))
        return np.concatenate(pieces) if pieces else np.zeros(0, np.int16)

    async def render_part(self, part: UtterancePart) -> np.ndarray:
        if part.wav:
            return await asyncio.get_running_loop().run_in_executor(None, self.read_wav, part.wav)
        return await self.speak(part.text)

    async def speak(self, text: str) -> np.ndarray:
        """``text`` spoken by the caller's voice, trimmed (see CallerVoiceSettings)."""
        return self.trim(await self.synthesised(text))

    def trim(self, pcm: np.ndarray) -> np.ndarray:
        s = self.settings
        if s.trim_below_dbfs is None or pcm.size == 0:
            return pcm
        loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) >= 32768.0 * 10 ** (s.trim_below_dbfs / 20.0))
        if loud.size == 0:
            return pcm
        lo = max(0, int(loud[0]) - SAMPLE_RATE * s.trim_lead_ms // 1000)
        hi = min(pcm.size, int(loud[-1]) + 1 + SAMPLE_RATE * s.trim_tail_ms // 1000)
        return pcm[lo:hi]

    async def synthesised(self, text: str) -> np.ndarray:
        """The synthesiser's whole output for ``text`` (from the cache when rendered before)."""
        path = self.cache_path(text)
        loop = asyncio.get_running_loop()
        async with self._lock:
            if path.exists():
                cached = await loop.run_in_executor(None, _read_cached, path)
                if cached is not None:
                    self.stats.cache_hits += 1
                    return cached
                self.stats.cache_unreadable += 1
            synthesize = self._synthesize or await self._load_kokoro()
            chunks = [np.asarray(c, np.int16) async for c in synthesize(text, self.settings.voice, self.settings.speed)]
            pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
            self.stats.synthesised += 1
            await loop.run_in_executor(None, _write_cached, path, pcm)
        return pcm

    def read_wav(self, path: str | Path) -> np.ndarray:
        """A WAV file as int16 mono at 24 kHz (channels averaged, resampled with soxr)."""
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        mono = data.mean(axis=1)
        if rate != SAMPLE_RATE:
            mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
        self.stats.wavs_read += 1
        return (np.clip(mono, -1.0, 1.0) * 32767.0).round().astype(np.int16)

    def cache_path(self, text: str) -> Path:
        key = f"{self.settings.voice}\x00{self.settings.speed:.3f}\x00{text}".encode()
        return self.cache_dir / f"{hashlib.sha256(key).hexdigest()[:24]}.wav"

    # ------------------------------------------------------------ internals

    async def _load_kokoro(self) -> Synthesize:
        from theo_ray.deployments.backends.kokoro_tts import KokoroBackend
        from theo_ray.config import TextToSpeechSettings

        loop = asyncio.get_running_loop()
        backend = await loop.run_in_executor(
            None,
            lambda: KokoroBackend(TextToSpeechSettings(voice=self.settings.voice), cache_dir=self.model_cache_dir),
        )
        self._synthesize = backend.synthesize
        return backend.synthesize


def _read_cached(path: Path) -> np.ndarray | None:
    try:
        data, rate = soundfile.read(str(path), dtype="int16")
    except (OSError, RuntimeError):  # LibsndfileError is a RuntimeError
        return None
    if rate != SAMPLE_RATE or data.ndim != 1:
        return None
    return data


def _write_cached(path: Path, pcm: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: a concurrent reader never sees half a file.
    tmp = path.with_suffix(f".{id(pcm)}.tmp")
    soundfile.write(str(tmp), pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    tmp.replace(path)
