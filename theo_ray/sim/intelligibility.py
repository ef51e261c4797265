"""The agent's intelligibility as a figure: Whisper's transcript of what the agent said, heard
on the caller's side of a phone line (8 kHz G.711), against the text it meant to say.

Word error rate (jiwer, a well-kept library) over the whole call, after one normalisation
of both sides: lower case, accents and punctuation dropped (a listener hears no accent
marks, and Whisper writes "e" for "é" freely), and numerals spelt out in Portuguese
(num2words), because Whisper writes "80 e 9" for the "oitenta e nove" the agent said. What
the agent meant is first put in the form its voice was given (`turn.spoken_form`: "R$ 89,90"
as words), so the figure judges the voice and the line, not the written notation.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import msgspec

from theo_ray.turn.spoken_form import spoken_form

_NUMBER = re.compile(r"\d+")
_NOT_WORD = re.compile(r"[^\w\s]")


class Intelligibility(msgspec.Struct, frozen=True):
    """WER of what the agent meant (reference) against what a listener's Whisper heard."""

    wer: float | None
    reference_words: int
    errors: int
    # Why there is no figure (nothing said, nothing heard), when wer is None.
    reason: str = ""


def normalise(text: str) -> str:
    from num2words import num2words

    text = spoken_form(text).lower().replace("r$", " ")
    text = _NUMBER.sub(lambda m: f" {num2words(int(m.group()), lang='pt_BR')} ", text)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(_NOT_WORD.sub(" ", text).split())


def intelligibility(meant: Iterable[str], heard: Iterable[str]) -> Intelligibility:
    """WER of the concatenated texts. Whole-call, so a sentence the listener's segmenter
    cut differently from the agent's turns costs nothing."""
    import jiwer

    reference = normalise(" ".join(meant))
    hypothesis = normalise(" ".join(heard))
    if not reference:
        return Intelligibility(None, 0, 0, "the agent meant to say nothing")
    if not hypothesis:
        n = len(reference.split())
        return Intelligibility(1.0, n, n, "nothing of the agent was heard")
    out = jiwer.process_words(reference, hypothesis)
    errors = out.substitutions + out.deletions + out.insertions
    n = out.substitutions + out.deletions + out.hits
    return Intelligibility(round(errors / n, 3), n, errors)
