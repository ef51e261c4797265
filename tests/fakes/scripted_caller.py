"""ScriptedCaller: what a caller says and when, as audio a fake STT can read back.

Test double: real speech would need a TTS and Whisper (slow, see tests/conversation for
those). Here each line is loud noise whose samples carry the line's id in their low bits
(value = 16 * k + id), so `decode_text(audio)` recovers which lines an utterance holds —
through the turn loop's real buffering, pre-roll and concatenation — and the energy VAD
(fake_vad.py) sees speech exactly where a line is.
"""

from __future__ import annotations

import msgspec
import numpy as np

RATE = 16000
LOUD = 1000  # |sample| above this is speech, below is the line's silence


class Line(msgspec.Struct, frozen=True):
    at_s: float  # from the start of the call
    text: str
    duration_s: float


class ScriptedCaller:
    def __init__(self, lines: list[Line], seed: int = 7) -> None:
        if len(lines) > 15:
            raise ValueError("at most 15 lines per caller (4-bit ids)")
        self.lines = sorted(lines, key=lambda line: line.at_s)
        rng = np.random.default_rng(seed)
        self._audio: list[tuple[int, int, np.ndarray]] = []  # (start, end sample, pcm)
        for i, line in enumerate(self.lines, start=1):
            n = int(line.duration_s * RATE)
            k = rng.integers(100, 250, n) * rng.choice((-1, 1), n)  # |16 k + id| in 1600..4000
            self._audio.append((int(line.at_s * RATE), int(line.at_s * RATE) + n, (16 * k + i).astype(np.int16)))

    def text_of(self, line_id: int) -> str:
        return self.lines[line_id - 1].text

    def audio(self, start: int, count: int) -> np.ndarray:
        """Samples [start, start + count) of the caller's side (faint noise between lines)."""
        out = (np.arange(count) % 7 - 3).astype(np.int16)  # ~-80 dBFS, never zero
        for begin, end, pcm in self._audio:
            lo, hi = max(begin, start), min(end, start + count)
            if lo < hi:
                out[lo - start : hi - start] = pcm[lo - begin : hi - begin]
        return out

    def decode_text(self, audio: np.ndarray) -> str:
        """The lines whose audio is in `audio`, in order, joined: what a perfect STT hears."""
        loud = audio[np.abs(audio.astype(np.int32)) > LOUD].astype(np.int32)
        ids: list[int] = []
        for value in np.mod(loud, 16):
            if value and (not ids or ids[-1] != value):
                ids.append(int(value))
        seen: list[int] = []
        for i in ids:
            if i not in seen and 1 <= i <= len(self.lines):
                seen.append(i)
        return " ".join(self.text_of(i) for i in seen)
