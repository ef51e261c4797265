"""Coqui XTTS v2 streaming backend for the GPU cluster (the `gpu` extra; never installed in CI).

Streams audio chunks as the model decodes them (``inference_stream``), 24 kHz. Needs a
local XTTS checkpoint folder and a speaker reference WAV (``tts.xtts_model_dir`` and
``tts.xtts_speaker_wav``). With an empty model folder it builds a random-weight model,
which exercises the streaming path only (used to test this code where the extra exists).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from theo_ray.config import TextToSpeechSettings
from theo_ray.errors import ModelUnavailable

_END = object()


class XttsBackend:
    sample_rate = 24000

    def __init__(self, settings: TextToSpeechSettings, cache_dir: Path) -> None:
        try:
            import torch
            from TTS.tts.configs.xtts_config import XttsConfig
            from TTS.tts.models.xtts import Xtts
        except ImportError as exc:
            raise ModelUnavailable("XTTS needs the `gpu` extra (coqui-tts with torch 2.9.1)") from exc
        self.settings = settings
        config = XttsConfig()
        model_dir = Path(settings.xtts_model_dir).expanduser() if settings.xtts_model_dir else None
        if model_dir:
            config.load_json(str(model_dir / "config.json"))
        self.model = Xtts.init_from_config(config)
        if model_dir:
            self.model.load_checkpoint(config, checkpoint_dir=str(model_dir), use_deepspeed=False)
        if torch.cuda.is_available():
            self.model.cuda()
        self.model_path = str(model_dir or "xtts:random-weights")
        if settings.xtts_speaker_wav:
            self.latent, self.speaker = self.model.get_conditioning_latents(audio_path=[settings.xtts_speaker_wav])
        else:
            self.latent = torch.zeros(1, 32, 1024, device=self.model.device)
            self.speaker = torch.zeros(1, 512, 1, device=self.model.device)
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="xtts")

    async def synthesize(self, sentence: str, voice: str, speed: float) -> AsyncIterator[np.ndarray]:
        loop = asyncio.get_running_loop()
        stream = await loop.run_in_executor(
            self._pool,
            lambda: iter(
                self.model.inference_stream(
                    sentence, "pt", self.latent, self.speaker, stream_chunk_size=20, speed=speed, enable_text_splitting=False
                )
            ),
        )
        while (chunk := await loop.run_in_executor(self._pool, next, stream, _END)) is not _END:
            audio = chunk.detach().float().cpu().numpy().ravel()
            yield (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
