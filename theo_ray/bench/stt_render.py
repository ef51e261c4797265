"""Caller audio for `theo bench stt`: a corpus utterance spoken by a voice, carried by a line.

Voices: Kokoro's pt-BR voices (`pf_dora`, `pm_alex`, `pm_santa`) through the simulator's
`CallerVoice`, and espeak-ng pt-br (`espeak:pt-br`, and a variant: `espeak:pt-br+f3`, a female
formant set spoken slower and higher). The espeak-ng voice is this module's own (no caller
voice of the simulator speaks espeak-ng).

A line: the voice resampled to the codec's rate with 200 ms of line before and 300 ms after
the speech (VAD pre-roll and the endpointer's tail), optionally white line noise at an SNR
measured against the speech's active frames, encoded frame by frame (G.711 mu-law or G.722)
into RTP packets, optionally 2 % of them dropped (seeded), and received by Theo's own inbound
chain (`media.inbound.InboundPath`: jitter buffer in arrival delivery, decoder, PLC, the
resampler to 16 kHz) exactly as a CallActor hands caller audio to STT.

Rendered voices (24 kHz) and rendered lines (16 kHz) are cached as WAV files under
`<model cache>/stt-bench/`, named by a hash of what made them.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import shutil
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import numpy as np
import soundfile

from theo_ray.media.codecs import create_codec
from theo_ray.media.inbound import InboundPath
from theo_ray.media.media_stats import MediaStats
from theo_ray.media.resample import resample_once
from theo_ray.media.rtp import RtpPacket
from theo_ray.media.settings import MediaSettings
from theo_ray.sim.caller_voice import SAMPLE_RATE, CallerVoice, CallerVoiceSettings

KOKORO_VOICES = ("pf_dora", "pm_alex", "pm_santa")
# espeak-ng voice -> (words per minute, pitch 0-99)
ESPEAK_VOICES = {"espeak:pt-br": (165, 50), "espeak:pt-br+f3": (145, 62)}
DEFAULT_VOICES = (*KOKORO_VOICES, *ESPEAK_VOICES)
CODECS = {"g711": "PCMU", "g722": "G722"}
# impairment -> (SNR dB or None, packet loss share)
IMPAIRMENTS = {"clean": (None, 0.0), "snr25": (25.0, 0.0), "snr15": (15.0, 0.0), "loss2": (None, 0.02)}
DEFAULT_CONDITIONS = tuple(f"{c}-{i}" for c in CODECS for i in IMPAIRMENTS)
LEAD_S, TAIL_S = 0.2, 0.3
RENDER_VERSION = 1  # bump when the line changes: old cached lines are not reused


def check_names(voices: list[str], conditions: list[str]) -> None:
    for v in voices:
        if v not in KOKORO_VOICES and v not in ESPEAK_VOICES:
            raise ValueError(f"unknown voice {v!r}: one of {', '.join(DEFAULT_VOICES)}")
    for c in conditions:
        if c not in DEFAULT_CONDITIONS:
            raise ValueError(f"unknown condition {c!r}: one of {', '.join(DEFAULT_CONDITIONS)}")


async def _espeak(text: str, voice: str, speed: float) -> AsyncIterator[np.ndarray]:
    """espeak-ng's pt-BR speech for `text` as int16 at the caller voice's 24 kHz."""
    binary = shutil.which("espeak-ng") or shutil.which("espeak")
    if binary is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    wpm, pitch = ESPEAK_VOICES[voice]
    proc = await asyncio.create_subprocess_exec(
        binary, "-v", voice.removeprefix("espeak:"), "-s", str(int(wpm * speed)), "-p", str(pitch), "--stdout", "--stdin",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(text.encode("utf-8"))
    if proc.returncode != 0 or not out:
        raise RuntimeError(f"espeak-ng failed: {err.decode(errors='replace').strip()}")
    with wave.open(io.BytesIO(out)) as wav:
        rate = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    yield resample_once(pcm, rate, SAMPLE_RATE)


class VoiceRenderer:
    """Voice renders (24 kHz int16), cached; Kokoro is loaded once, on the first miss."""

    def __init__(self, cache_dir: Path, model_cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.model_cache_dir = model_cache_dir
        self._voices: dict[str, CallerVoice] = {}
        self._kokoro = None

    async def _kokoro_synthesize(self, text: str, voice: str, speed: float) -> AsyncIterator[np.ndarray]:
        if self._kokoro is None:
            from theo_ray.config import TextToSpeechSettings
            from theo_ray.deployments.backends.kokoro_tts import KokoroBackend

            self._kokoro = await asyncio.get_running_loop().run_in_executor(
                None, lambda: KokoroBackend(TextToSpeechSettings(voice=voice), cache_dir=self.model_cache_dir))
        async for chunk in self._kokoro.synthesize(text, voice, speed):
            yield chunk

    async def speak(self, voice: str, text: str) -> np.ndarray:
        if voice not in self._voices:
            synth = _espeak if voice in ESPEAK_VOICES else self._kokoro_synthesize
            self._voices[voice] = CallerVoice(self.cache_dir / "voices", CallerVoiceSettings(voice=voice),
                                              model_cache_dir=self.model_cache_dir, synthesize=synth)
        return await self._voices[voice].speak(text)

    @property
    def synthesised(self) -> int:
        return sum(v.stats.synthesised for v in self._voices.values())


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x00".join(parts).encode()).digest()[:8], "little")


def _active_rms(x: np.ndarray, frame: int) -> float:
    """RMS over the frames within 30 dB of the loudest: the speech, not its pauses."""
    n = x.size // frame
    if n == 0:
        return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if x.size else 0.0
    rms = np.sqrt(np.mean(x[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1))
    active = rms[rms >= rms.max() * 10 ** (-30 / 20)]
    return float(np.sqrt(np.mean(active**2)))


class LineFigures(msgspec.Struct):
    packets: int
    dropped: int
    concealed_frames: int


def over_line(pcm24k: np.ndarray, condition: str, seed: int) -> tuple[np.ndarray, LineFigures]:
    """`pcm24k` as STT gets it from a call over `condition` ("g711-clean", "g722-loss2", ...):
    int16 at 16 kHz from Theo's inbound chain, and what the line did."""
    codec_key, impairment = condition.split("-", 1)
    snr_db, loss = IMPAIRMENTS[impairment]
    name = CODECS[codec_key]
    encoder = create_codec(name)
    rate = encoder.sample_rate
    frame = encoder.samples_per_frame(20)
    x = resample_once(pcm24k, SAMPLE_RATE, rate).astype(np.float64)
    x = np.concatenate((np.zeros(int(LEAD_S * rate)), x, np.zeros(int(TAIL_S * rate))))
    x = np.concatenate((x, np.zeros((-x.size) % frame)))
    rng = np.random.default_rng(seed)
    if snr_db is not None:
        noise = rng.standard_normal(x.size)
        x = x + noise * (_active_rms(x, frame) / 10 ** (snr_db / 20))
    pcm = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    n = pcm.size // frame
    dropped = rng.random(n) < loss if loss else np.zeros(n, bool)

    now = 0.0
    path = InboundPath(MediaSettings(inbound_queue_frames=100_000), MediaStats(), clock=lambda: now)
    path.configure(encoder, name, None)
    step = encoder.timestamp_step(20)
    out: list[np.ndarray] = []
    concealed = 0
    for i in range(n):
        now = i * 0.020
        payload = encoder.encode(pcm[i * frame : (i + 1) * frame])
        if dropped[i]:
            path.tick(now)
        else:
            packet = RtpPacket(payload_type=encoder.payload_type, sequence=i, timestamp=i * step, ssrc=0x5EED, payload=payload)
            path.accept_audio(packet, 12 + len(payload), now)
        while not path._frames.empty():
            f = path._frames.get_nowait()
            if f is not None:
                out.append(f.pcm)
                concealed += f.concealed
    audio = np.concatenate(out) if out else np.zeros(0, np.int16)
    return audio, LineFigures(n, int(dropped.sum()), concealed)


class LineRenderer:
    """Utterances over lines, cached as 16 kHz WAVs (the voice renders cached below them)."""

    def __init__(self, cache_root: Path, model_cache_dir: Path) -> None:
        self.root = cache_root
        self.voices = VoiceRenderer(cache_root, model_cache_dir)
        self.lines_rendered = 0

    def _path(self, voice: str, condition: str, text: str) -> Path:
        key = hashlib.sha256(f"{RENDER_VERSION}\x00{voice}\x00{condition}\x00{text}".encode()).hexdigest()[:24]
        return self.root / "lines" / voice.replace(":", "_") / condition / f"{key}.wav"

    async def render(self, voice: str, condition: str, text: str) -> np.ndarray:
        """int16 mono at 16 kHz."""
        path = self._path(voice, condition, text)
        if path.exists():
            try:
                data, rate = soundfile.read(str(path), dtype="int16")
                if rate == 16000 and data.ndim == 1:
                    return data
            except (OSError, RuntimeError):
                pass
        pcm = await self.voices.speak(voice, text)
        audio, _figures = over_line(pcm, condition, _seed(voice, condition, text))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.wav")
        soundfile.write(str(tmp), audio, 16000, subtype="PCM_16")
        tmp.replace(path)
        self.lines_rendered += 1
        return audio
