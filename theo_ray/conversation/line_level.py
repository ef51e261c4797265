"""LineLevel: the inbound line's noise floor, followed packet by packet, and the level above
it that counts as the caller starting to talk (the barge-in fast path's threshold).

Why adaptive: a fixed threshold is either too high for a quiet line (measured: the soft
start of "Espera" over G.711 reached only ~190 RMS, so a 250 RMS threshold waited ~130 ms
for the first loud vowel) or too low for a caller in the street (noise at -45 dBFS, ~180
RMS, would pause the agent all the time). A minimum follower: the floor drops at once to
a quieter packet and creeps up slowly (time constant ~10 s at 50 packets/s), so speech
bursts barely move it but a lasting noisier line raises it.
"""

from __future__ import annotations


class LineLevel:
    def __init__(self, min_rms: float, rise_db: float, initial_floor: float | None = None) -> None:
        self.min_rms = min_rms
        self.rise = 10 ** (rise_db / 20)
        self.floor = initial_floor if initial_floor is not None else min_rms / self.rise

    def update(self, rms: float) -> None:
        """One inbound packet's RMS (int16 scale)."""
        if rms < self.floor:
            self.floor = max(rms, 1.0)
        else:
            self.floor += (rms - self.floor) * 0.002

    @property
    def pause_threshold(self) -> float:
        """A packet louder than this may be the caller starting to talk."""
        return self.above_floor(self.min_rms)

    def above_floor(self, min_rms: float) -> float:
        """The floor + the rise, and at least `min_rms`: louder than this is not the line."""
        return max(min_rms, self.floor * self.rise)
