"""A second kind of caller voice: espeak-ng pt-BR, and the caller voices by name.

The benchmarks' caller normally speaks with Kokoro (pm_alex, see caller_voice.py), the same
synthesiser family as the agent's voice; a turn-taking figure measured with one voice only
could be a property of that voice (its pauses, its breath, how its "uhum" sounds to the
VAD and to Whisper). espeak-ng is a formant synthesiser with nothing in common with Kokoro:
robotic, flat, always installed. :func:`espeak_synthesize` fits ``CallerVoice``'s
``synthesize`` seam (int16 at 24 kHz, resampled from espeak's 22 050 Hz with soxr); the
voice's cache keys carry the voice name, so its WAVs never mix with Kokoro's.

:func:`caller_voice_named` builds a caller voice from a name: a Kokoro pt-BR voice
(``pm_alex``, ``pf_dora``, ``pm_santa``) or ``espeak`` (espeak-ng ``pt-br``).
"""

from __future__ import annotations

import asyncio
import io
import shutil
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import soxr

from theo_ray.errors import ConfigError, TheoError
from theo_ray.sim.caller_voice import SAMPLE_RATE, CallerVoice, CallerVoiceSettings

ESPEAK = "espeak"
KOKORO_VOICES = ("pm_alex", "pf_dora", "pm_santa")
CALLER_VOICES = (*KOKORO_VOICES, ESPEAK)
ESPEAK_TIMEOUT_S = 30.0


async def espeak_synthesize(text: str, voice: str = "pt-br", speed: float = 1.0) -> AsyncIterator[np.ndarray]:
    """``text`` spoken by espeak-ng (``voice`` is an espeak voice name; anything that is not
    one, such as this module's ``espeak``, means pt-br) as int16 chunks at 24 kHz."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise TheoError("espeak-ng is not installed (apt-get install espeak-ng)")
    espeak_voice = voice if voice and voice != ESPEAK else "pt-br"
    proc = await asyncio.create_subprocess_exec(
        binary, "-v", espeak_voice, "-s", str(int(165 * speed)), "--stdout", "--stdin",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(text.encode("utf-8")), ESPEAK_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise TheoError(f"espeak-ng took over {ESPEAK_TIMEOUT_S:.0f} s") from None
    if proc.returncode != 0 or not out:
        raise TheoError(f"espeak-ng failed: {err.decode(errors='replace').strip()}")
    with wave.open(io.BytesIO(out)) as wav:
        rate = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    if rate != SAMPLE_RATE:
        pcm = await asyncio.get_running_loop().run_in_executor(
            None, lambda: soxr.resample(pcm, rate, SAMPLE_RATE, quality="HQ")
        )
    yield (np.clip(pcm, -1.0, 1.0) * 32767.0).round().astype(np.int16)


def caller_voice_named(name: str, cache_dir: str | Path, model_cache_dir: str | Path = "~/.cache/theo") -> CallerVoice:
    """A caller voice by name: a Kokoro pt-BR voice or ``espeak``; ConfigError for others."""
    if name == ESPEAK:
        # espeak's own padding is short; the trim keeps its quiet tail out of pauses all the same.
        return CallerVoice(cache_dir, CallerVoiceSettings(voice=ESPEAK), model_cache_dir=model_cache_dir,
                           synthesize=espeak_synthesize)
    if name in KOKORO_VOICES:
        return CallerVoice(cache_dir, CallerVoiceSettings(voice=name), model_cache_dir=model_cache_dir)
    raise ConfigError("voices", f"unknown caller voice {name!r}; known: {', '.join(CALLER_VOICES)}")
