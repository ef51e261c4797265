"""StablePartial: LocalAgreement-2 over re-decoded partial transcripts.

Each partial re-transcribes the whole utterance so far; words that two consecutive
partials agree on (as a common prefix) are stable and never change afterwards, which is
what the endpointer's linguistic rules and backchannel checks may trust.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"\S+")


def _norm(word: str) -> str:
    return re.sub(r"[^\w]", "", word.lower())


class StablePartial:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._previous: list[str] = []
        self.stable: list[str] = []
        self.latest = ""

    def update(self, hypothesis: str) -> str:
        """Feed the newest full-utterance hypothesis; return the stable prefix text."""
        words = _WORD.findall(hypothesis)
        agreed = []
        for a, b in zip(self._previous, words):
            if _norm(a) != _norm(b):
                break
            agreed.append(b)
        if len(agreed) > len(self.stable):
            self.stable = agreed
        self._previous = words
        self.latest = hypothesis.strip()
        return " ".join(self.stable)

    @property
    def text(self) -> str:
        """Best current text: the latest hypothesis (stable words are its prefix)."""
        return self.latest
