"""EnergyVad: SileroVad's own windowing and hysteresis with an energy rule for the model.

Test double: Silero needs real speech; the scripted caller (scripted_caller.py) speaks
loud noise. Only `_run_window` is replaced, so the speech start/end events, silence and
speech accounting are the library's.
"""

from __future__ import annotations

import numpy as np

from theo_ray.turn.settings import VadSettings
from theo_ray.turn.vad import SileroVad


class EnergyVad(SileroVad):
    def __init__(self, settings: VadSettings | None = None, threshold_rms: float = 800.0) -> None:
        self._threshold = threshold_rms / 32768.0
        super().__init__(settings, session=object())

    def _run_window(self, window: np.ndarray) -> float:
        self._windows_done += 1
        self.stats.windows += 1
        rms = float(np.sqrt(np.mean(window * window)))
        self.probability = 0.95 if rms > self._threshold else 0.02
        return self.probability
