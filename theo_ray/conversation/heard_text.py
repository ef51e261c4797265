"""What the caller actually heard of an interrupted reply, from the samples played.

Speech rate within one synthesised sentence is close to uniform, so the heard part is the
fraction of the sentence's samples that were sent, mapped onto its characters and cut at
the last word boundary; the cut is marked with an em dash, as the prompt expects.
"""

from __future__ import annotations

from theo_ray.media.playout import MarkProgress


def heard_prefix(text: str, fraction: float) -> str:
    if fraction >= 0.999:
        return text
    if fraction <= 0.0:
        return ""
    cut = int(len(text) * fraction)
    head = text[:cut]
    # Keep a word only if most of it was played.
    if cut < len(text) and text[cut - 1 : cut].isalnum() and text[cut : cut + 1].isalnum():
        word_start = head.rfind(" ") + 1
        word_end = text.find(" ", cut)
        word_end = len(text) if word_end < 0 else word_end
        if (cut - word_start) < 0.5 * (word_end - word_start):
            head = head[:word_start]
        else:
            head = text[:word_end]
    return head.rstrip(" ,;")


def heard_text(pieces: list[tuple[str, str]], progress: dict[str, MarkProgress]) -> tuple[str, bool]:
    """``pieces`` = [(mark, text)] in speaking order; returns (heard text, interrupted?)."""
    heard: list[str] = []
    for mark, text in pieces:
        p = progress.get(mark)
        if p is None or p.sent_samples == 0:
            return (" ".join(heard) + "—").strip() if heard else "", True
        if p.enqueued_samples and p.sent_samples < p.enqueued_samples:
            part = heard_prefix(text, p.sent_fraction)
            if part:
                heard.append(part)
            return (" ".join(heard) + "—").strip(), True
        heard.append(text)
    return " ".join(heard), False
