"""Smart Turn v3.2: probability that the caller finished their turn, from the audio alone.

Input format (read from pipecat's ``local_smart_turn_v3.py``): the last 8 s of 16 kHz audio,
zero-padded at the front when shorter, normalised to zero mean / unit variance, turned into
Whisper log-mel features (80 x 800) and fed as ``input_features`` (1, 80, 800); the output is a
sigmoid probability. Features come from ``faster_whisper.feature_extractor.FeatureExtractor``
(numpy only) with ``padding=0``: it drops the last STFT frame exactly as pipecat's vendored
transformers code does, so 128000 samples give 800 frames.

``predict()`` costs tens of milliseconds of CPU: it is executor work — use ``predict_async()``
from an actor. One ``SmartTurn`` may be shared by the calls of a process (it holds no per-call
state; onnxruntime sessions are thread-safe for ``run``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

import msgspec
import numpy as np

from theo_ray.turn.settings import TurnModelSettings
from theo_ray.turn.turn_model_assets import ensure_smart_turn_model

SAMPLE_RATE = 16000
WINDOW_SECONDS = 8
WINDOW_SAMPLES = SAMPLE_RATE * WINDOW_SECONDS
_NORM_EPS = 1e-7


class TurnPrediction(msgspec.Struct, frozen=True):
    probability: float  # P(turn complete), in [0, 1]
    ms: float  # wall time of feature extraction + inference


class SmartTurn:
    def __init__(
        self,
        settings: TurnModelSettings | None = None,
        model_path: str | Path | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        import onnxruntime as ort
        from faster_whisper.feature_extractor import FeatureExtractor

        self.settings = settings or TurnModelSettings()
        path = model_path or self.settings.model_path or ensure_smart_turn_model(
            self.settings.cache_dir
        )
        options = ort.SessionOptions()
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = self.settings.threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._features = FeatureExtractor(feature_size=80, chunk_length=WINDOW_SECONDS)
        self._clock = clock

    def features(self, audio_16k: np.ndarray) -> np.ndarray:
        """Whisper log-mel features (80, 800) of the last 8 s of ``audio_16k``."""
        x = _as_float(audio_16k)
        if x.size > WINDOW_SAMPLES:
            x = x[-WINDOW_SAMPLES:]
        elif x.size < WINDOW_SAMPLES:
            x = np.pad(x, (WINDOW_SAMPLES - x.size, 0))
        x = (x - x.mean()) / np.sqrt(x.var() + _NORM_EPS)
        return self._features(x, padding=0).astype(np.float32)

    def predict(self, audio_16k: np.ndarray | bytes) -> TurnPrediction:
        """P(turn complete) for the caller audio so far (int16 bytes/array or float array)."""
        started = self._clock()
        features = self.features(_as_float(audio_16k))[np.newaxis]
        (logits,) = self._session.run(None, {"input_features": features})
        probability = float(np.clip(logits.reshape(-1)[0], 0.0, 1.0))
        return TurnPrediction(probability, (self._clock() - started) * 1000.0)

    async def predict_async(
        self, audio_16k: np.ndarray | bytes, executor: Executor | None = None
    ) -> TurnPrediction:
        """``predict`` in an executor so the event loop keeps serving RTP."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, self.predict, audio_16k)


def _as_float(audio: np.ndarray | bytes) -> np.ndarray:
    if isinstance(audio, (bytes, bytearray, memoryview)):
        return np.frombuffer(audio, dtype="<i2").astype(np.float32) / 32768.0
    array = np.asarray(audio)
    if array.dtype == np.int16:
        return array.astype(np.float32) / 32768.0
    return array.astype(np.float32, copy=False).reshape(-1)
