"""Notices an LLM reply caught in a loop: "o que o que o que ...", "Colas, Colas, Colas, ...",
or one sentence said again and again.

Small models (and larger ones at low temperature) sometimes repeat one phrase until
max_tokens: for the caller, tens of seconds of the same words and no way to get a word in
but to interrupt. The turn loop feeds every text delta here; once the end of the reply is one
unit of up to `max_unit_words` words repeated back to back often enough (`single_word_repeats`
for one word, `short_unit_repeats` for 2-4 words, `long_unit_repeats` for longer units), it
stops the generation and speaks nothing more of that reply. Numbers never make a loop:
"nove nove nove nove" is a 9999 read out digit by digit.

Written by hand: vLLM's `repetition_penalty` (and the like) reshapes every reply's sampling,
not just the looping ones, and does not exist for every backend; this check costs a
comparison of a few dozen words per delta and changes nothing until a reply really loops.
"""

from __future__ import annotations

import re

from theo_ray.turn.settings import RepetitionGuardSettings
from theo_ray.turn.spoken_digits import NUMBER_WORDS

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


class RepetitionGuard:
    """One per reply: `feed(delta)` returns True once the reply so far ends in a loop."""

    def __init__(self, settings: RepetitionGuardSettings | None = None) -> None:
        self.settings = s = settings or RepetitionGuardSettings()
        self._words: list[str] = []
        self._partial = ""  # the text of a word still arriving
        # Only the tail can hold a loop that is still growing: the longest loop checked.
        self._keep = s.max_unit_words * max(s.single_word_repeats, s.short_unit_repeats, s.long_unit_repeats)
        self.loop: tuple[str, int] | None = None  # (the repeated unit, repeats) once found

    def feed(self, delta: str) -> bool:
        if not self.settings.enabled or self.loop is not None:
            return self.loop is not None
        text = self._partial + delta
        words = _WORD.findall(text)
        self._partial = ""
        if words and text[-1].isalnum():
            # The last word may continue in the next delta ("Col" + "as"): keep it aside.
            self._partial = text[text.rfind(words[-1]) :]
            words.pop()
        if not words:
            return False
        self._words.extend(w.lower() for w in words)
        if len(self._words) > 2 * self._keep:
            del self._words[: -self._keep]
        self.loop = self._loop_at_end()
        return self.loop is not None

    def _loop_at_end(self) -> tuple[str, int] | None:
        words = self._words
        s = self.settings
        for n in range(1, s.max_unit_words + 1):
            need = s.single_word_repeats if n == 1 else s.short_unit_repeats if n <= 4 else s.long_unit_repeats
            if len(words) < n * need:
                continue
            unit = words[-n:]
            if all(w in NUMBER_WORDS or w.isdigit() for w in unit):
                continue  # a number read out digit by digit
            repeats = 1
            while repeats < need and words[-(repeats + 1) * n : -repeats * n] == unit:
                repeats += 1
            if repeats >= need:
                return " ".join(unit), repeats
        return None
