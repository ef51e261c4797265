"""Read-back of dictated digits the decoder was unsure of, and the caller's confirmation.

A caller's turn holding a dictated number (a run of at least `readback_min_digits` digits:
CPF, phone, protocol, CEP) with a word of that run heard at a probability under
`conversation.readback_word_probability` is not handed to the language model as it is: the
agent reads the digits back ("Só confirmando: quatro cinco dois, … Está certo?"). A plain
yes then hands the language model the turn that was read back, as if it had been heard
clearly; a plain no asks for the number again; anything else (a correction with the
digits again, another subject) is the caller's next turn as usual. At most
`readback_max_in_a_row` read-backs in a row: a number still unsure after that goes on to
the model, which may ask in its own words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Literal

import msgspec

from theo_ray.messages import Word
from theo_ray.turn.spoken_digits import digit_runs, tokens

DIGIT_NAMES = ("zero", "um", "dois", "três", "quatro", "cinco", "seis", "sete", "oito", "nove")
# A run followed by one of these (or after "R$") is money, not a dictation.
_MONEY_AFTER = frozenset({"reais", "real", "centavos", "centavo", "conto", "contos"})
_YES = frozenset({"sim", "isso", "correto", "certo", "certinho", "exato", "exatamente", "confirmo", "positivo",
                  "perfeito", "aham", "uhum", "ta", "esta", "e", "mesmo", "isso mesmo", "pode", "ser", "tudo"})
_NO = frozenset({"nao", "errado", "incorreto", "negativo"})


class UnsureDigits(msgspec.Struct, frozen=True):
    digits: str
    probability: float  # the least sure word of the run (0..1)


class ReadBack(msgspec.Struct, frozen=True):
    """A turn read back instead of answered: what the caller said and the digits asked about."""

    caller_text: str
    runs: list[UnsureDigits]

    @property
    def phrase(self) -> str:
        """What the agent says (pt-BR): every unsure run, its digits one by one, in groups."""
        spoken = " e ".join(spoken_digits(r.digits) for r in self.runs)
        return f"Só confirmando: {spoken}. Está certo?"


Answer = Literal["yes", "no", "other"]


def spoken_digits(digits: str) -> str:
    """"45231899017" -> "quatro cinco dois, três um oito, nove nove zero, um sete": digit by
    digit (a TTS reads "452" as a number), in groups of three, never a lone digit at the end."""
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    if len(groups) > 1 and len(groups[-1]) == 1:
        groups[-2:] = [groups[-2][:2], groups[-2][2:] + groups[-1]]
    return ", ".join(" ".join(DIGIT_NAMES[int(d)] for d in g) for g in groups)


def dictated_runs(words: Sequence[Word], min_digits: int) -> list[UnsureDigits]:
    """The dictated digit runs of a transcript (its words with the decoder's probabilities),
    each with its least sure word's probability; money amounts are not dictations."""
    owner: list[int] = []  # token index -> the word it came from
    for i, word in enumerate(words):
        owner.extend(i for _ in tokens(word.text))
    toks, runs = digit_runs(" ".join(w.text for w in words))
    if len(toks) != len(owner):  # cannot happen (tokens never span a space); never guess
        return []
    found = []
    for run in runs:
        if len(run.digits) < min_digits or _is_money(toks, run.first_token, run.last_token):
            continue
        probability = min(words[owner[t]].probability for t in range(run.first_token, run.last_token + 1))
        found.append(UnsureDigits(run.digits, round(probability, 3)))
    return found


def unsure_digits(words: Sequence[Word], min_digits: int, threshold: float) -> list[UnsureDigits]:
    """The dictated digit runs whose least sure word is under `threshold`."""
    return [r for r in dictated_runs(words, min_digits) if r.probability < threshold]


def _is_money(toks: list[str], first: int, last: int) -> bool:
    after = toks[last + 1] if last + 1 < len(toks) else ""
    before = toks[first - 1] if first else ""
    return after in _MONEY_AFTER or before == "r"


def answer_to(text: str) -> Answer:
    """The caller's answer to a read-back: a plain yes, a plain no (no digits in either), or
    anything else."""
    folded = "".join(c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn")
    words = re.findall(r"[a-z]+|\d", folded)
    if not words or digit_runs(folded)[1]:
        return "other"
    if any(w in _NO for w in words):
        return "no"
    return "yes" if words[0] in _YES and all(w in _YES for w in words[:4]) else "other"


class ReadBackTracker:
    """One call's read-backs: whether a turn is read back, and what a yes or a no means."""

    def __init__(self, threshold: float, min_digits: int, max_in_a_row: int) -> None:
        self.threshold = threshold
        self.min_digits = min_digits
        self.max_in_a_row = max_in_a_row
        self.pending: ReadBack | None = None
        self._in_a_row = 0

    def check(self, text: str, words: Sequence[Word]) -> ReadBack | None:
        """The read-back for this caller turn, or None to answer it (remembered as pending)."""
        runs = unsure_digits(words, self.min_digits, self.threshold) if self.threshold > 0 else []
        if not runs or self._in_a_row >= self.max_in_a_row:
            self._in_a_row = 0
            self.pending = None
            return None
        self._in_a_row += 1
        self.pending = ReadBack(text, runs)
        return self.pending

    def resolve(self, text: str) -> tuple[Answer, str]:
        """The caller's turn after a read-back: (their answer, the text the model is given) —
        the turn read back on a yes, their own words otherwise. Clears the pending read-back."""
        pending, self.pending = self.pending, None
        if pending is None:
            return "other", text
        answer = answer_to(text)
        if answer == "yes":
            self._in_a_row = 0
            return answer, pending.caller_text
        return answer, text
