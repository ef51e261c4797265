"""Spoken pt-BR digits → digit strings: "um dois três" → "123", "cento e vinte e três" → "123".

Shared by the endpointer (is the caller dictating?) and entity extraction (what did they
dictate?). Handles digit words (with "meia" = 6, as Brazilians say in phone numbers), teens,
tens and hundreds joined by "e" ("vinte e três" → "23"), separators said aloud ("ponto", "traço")
and digits the STT already wrote ("123.456", "1, 2, 3"). Consecutive number groups are
concatenated, because that is how people dictate: "cento e vinte e três, quatro cinco" → "12345".
Only for digit entities (CPF, phone, protocol): money and dates keep their own formatting and
are read from the original text.
"""

from __future__ import annotations

import re
import unicodedata

UNITS = {
    "zero": 0, "um": 1, "uma": 1, "dois": 2, "duas": 2, "três": 3, "tres": 3, "quatro": 4,
    "cinco": 5, "seis": 6, "meia": 6, "sete": 7, "oito": 8, "nove": 9,
}
TEENS = {
    "dez": 10, "onze": 11, "doze": 12, "treze": 13, "catorze": 14, "quatorze": 14,
    "quinze": 15, "dezesseis": 16, "dezessete": 17, "dezoito": 18, "dezenove": 19,
}
TENS = {
    "vinte": 20, "trinta": 30, "quarenta": 40, "cinquenta": 50, "sessenta": 60,
    "setenta": 70, "oitenta": 80, "noventa": 90,
}
HUNDREDS = {
    "cem": 100, "cento": 100, "duzentos": 200, "duzentas": 200, "trezentos": 300,
    "trezentas": 300, "quatrocentos": 400, "quatrocentas": 400, "quinhentos": 500,
    "quinhentas": 500, "seiscentos": 600, "seiscentas": 600, "setecentos": 700,
    "setecentas": 700, "oitocentos": 800, "oitocentas": 800, "novecentos": 900,
    "novecentas": 900,
}
# Every pt-BR number word, the scale words included ("dois mil", "três milhões").
NUMBER_WORDS = frozenset(
    {*UNITS, *TEENS, *TENS, *HUNDREDS, "mil", "milhão", "milhao", "milhões", "milhoes", "bilhão", "bilhões"}
)
# Said between groups while dictating; they keep a run of digits going.
SEPARATORS = frozenset({"ponto", "traço", "traco", "hífen", "hifen", "barra", "vírgula", "virgula"})

_TOKEN = re.compile(r"\d+|[^\W\d_]+|[.,\-/]", re.UNICODE)


def _magnitude(word: str) -> int:
    if word in HUNDREDS:
        return 3
    if word in TENS:
        return 2
    if word in TEENS or word in UNITS:
        return 1
    return 0


def number_word_value(word: str) -> int | None:
    for table in (UNITS, TEENS, TENS, HUNDREDS):
        if word in table:
            return table[word]
    return None


def tokens(text: str) -> list[str]:
    """Lower-cased words, digit runs and the separators . , - / in order."""
    return _TOKEN.findall(unicodedata.normalize("NFC", text.lower()))


class DigitRun:
    """A maximal run of digits said or written in a row, with where it sits among the tokens."""

    __slots__ = ("digits", "first_token", "last_token", "spoken_words")

    def __init__(self, digits: str, first_token: int, last_token: int, spoken_words: int) -> None:
        self.digits = digits
        self.first_token = first_token
        self.last_token = last_token
        self.spoken_words = spoken_words

    def __repr__(self) -> str:
        return f"DigitRun({self.digits!r}, tokens {self.first_token}..{self.last_token})"


def digit_runs(text: str) -> tuple[list[str], list[DigitRun]]:
    """Tokens of ``text`` and the runs of digits in it.

    A lone "um"/"uma" (an article as often as a number) starts a run only when another number
    follows it; a run continues across separators, "e" between number words, and punctuation.
    """
    toks = tokens(text)
    runs: list[DigitRun] = []
    i = 0
    n = len(toks)
    while i < n:
        if not _is_numeric(toks[i]):
            i += 1
            continue
        start = i
        digits = ""
        spoken = 0
        group = 0  # value of the number-word group being built
        group_mag = 0  # magnitude of its last word
        last_numeric = i
        j = i
        while j < n:
            tok = toks[j]
            if tok.isdigit():
                if group_mag:
                    digits += str(group)
                    group, group_mag = 0, 0
                digits += tok
                last_numeric = j
            elif (mag := _magnitude(tok)) > 0:
                value = number_word_value(tok) or 0
                joined = group_mag > mag and not (tok in TEENS and group_mag == 2)
                if group_mag and joined:
                    group += value
                else:
                    if group_mag:
                        digits += str(group)
                    group = value
                group_mag = mag
                spoken += 1
                last_numeric = j
            elif tok in SEPARATORS or tok in {".", ",", "-", "/"} or (
                tok == "e" and j + 1 < n and _magnitude(toks[j + 1]) > 0
            ):
                pass
            else:
                break
            j += 1
        if group_mag:
            digits += str(group)
        lone_article = spoken == 1 and len(digits) == 1 and toks[start] in {"um", "uma"}
        if not lone_article:
            runs.append(DigitRun(digits, start, last_numeric, spoken))
        i = last_numeric + 1
    return toks, runs


def _is_numeric(tok: str) -> bool:
    return tok.isdigit() or _magnitude(tok) > 0


def spoken_to_digits(text: str) -> str:
    """``text`` with every run of spoken/written digits replaced by its digit string.

    "meu cpf é um dois três ponto quatro cinco seis" → "meu cpf é 123456".
    """
    toks, runs = digit_runs(text)
    if not runs:
        return text
    out: list[str] = []
    i = 0
    for run in runs:
        out.extend(toks[i : run.first_token])
        out.append(run.digits)
        i = run.last_token + 1
    out.extend(toks[i:])
    return " ".join(out)
