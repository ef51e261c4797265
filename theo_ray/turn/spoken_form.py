"""Written pt-BR → what the voice should say: money and percentages spelt out in words.

The language model writes "R$ 89,90" and "10%"; the phonemizer under the voice reads "R$" as
a letter and a symbol and "89,90" as two numbers, and the caller heard "de real, 89,90".
Amounts are spelt with num2words (a well-kept library; Brazilian currency wording), with the
Brazilian number format: "." groups thousands, "," starts the cents. Other numbers (dates,
protocols, digits being dictated) are left to the phonemizer, which reads them as numbers.
"""

from __future__ import annotations

import re

# "R$ 1.234,56", "R$89,90", "R$ 120", "R$ 0,50"; a trailing "reais" the model may add too.
_MONEY = re.compile(r"R\$\s?(\d{1,3}(?:\.\d{3})+|\d+)(?:,(\d{1,2}))?(?:\s+reais\b)?", re.IGNORECASE)
_PERCENT = re.compile(r"(\d+)(?:,(\d+))?\s?%")


def _amount(units: str, cents: str | None) -> str:
    from num2words import num2words

    value = int(units.replace(".", "")) + (int(cents.ljust(2, "0")) / 100 if cents else 0.0)
    said = num2words(value, lang="pt_BR", to="currency").replace(",", "")
    return said.removeprefix("zero reais e ")  # "R$ 0,50": "cinquenta centavos"


def _percent(whole: str, fraction: str | None) -> str:
    from num2words import num2words

    said = num2words(int(whole), lang="pt_BR")
    if fraction:
        said += " vírgula " + num2words(int(fraction), lang="pt_BR")
    return f"{said} por cento"


def amount_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each amount or percentage in ``text``."""
    return sorted(m.span() for pattern in (_MONEY, _PERCENT) for m in pattern.finditer(text))


def spoken_growth(text: str) -> list[tuple[int, int]]:
    """(end index, characters added) of each amount ``spoken_form`` would spell out: "R$ 89,90"
    is 8 characters written and 39 said, which is what a voice takes time over."""
    out = []
    for pattern, say in ((_MONEY, _amount), (_PERCENT, _percent)):
        for m in pattern.finditer(text):
            out.append((m.end(), len(say(m.group(1), m.group(2))) - len(m.group())))
    return sorted(out)


def spoken_form(text: str) -> str:
    """The text with money and percentages as words; everything else unchanged."""
    if "$" in text:
        text = _MONEY.sub(lambda m: _amount(m.group(1), m.group(2)), text)
    if "%" in text:
        text = _PERCENT.sub(lambda m: _percent(m.group(1), m.group(2)), text)
    return text
