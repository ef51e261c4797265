"""Judging a transcript for `theo bench stt`: word error rate and whether the meaning survived.

Both the reference and the transcript are normalised the same way before they are compared:
lower case, no accents, no punctuation, hesitation sounds dropped ("hum", "ah"), a few spoken
contractions spelled out ("pra" = "para", "tá" = "está"), and every number, whether written in
words ("cento e doze", "meia" for six in dictation) or in digits ("112", "R$ 89,90",
"452.318.990-17"), as its digits, one token per digit. Whisper writes a dictated CPF as words
or as numerals; either is the same for the call, and a wrong digit is one word error.

An utterance's meaning is lost when one of its keys (the words and entities that carry it,
written in the corpus) is not in the normalised transcript as a run of tokens.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import jiwer
import msgspec
import yaml

CORPUS_PATH = Path(__file__).with_name("data") / "stt_corpus.yaml"

_UNITS = {"zero": 0, "um": 1, "uma": 1, "dois": 2, "duas": 2, "tres": 3, "quatro": 4, "cinco": 5, "seis": 6,
          "sete": 7, "oito": 8, "nove": 9}
_TEENS = {"dez": 10, "onze": 11, "doze": 12, "treze": 13, "quatorze": 14, "catorze": 14, "quinze": 15,
          "dezesseis": 16, "dezasseis": 16, "dezessete": 17, "dezoito": 18, "dezenove": 19}
_TENS = {"vinte": 20, "trinta": 30, "quarenta": 40, "cinquenta": 50, "sessenta": 60, "setenta": 70,
         "oitenta": 80, "noventa": 90}
_HUNDREDS = {"cem": 100, "cento": 100, "duzentos": 200, "duzentas": 200, "trezentos": 300, "trezentas": 300,
             "quatrocentos": 400, "quinhentos": 500, "seiscentos": 600, "setecentos": 700, "oitocentos": 800,
             "novecentos": 900}
# Slot of a number word inside one number: hundreds > tens > teens/units; "mil" is 4.
_SLOT = {**{w: 1 for w in _UNITS}, **{w: 1 for w in _TEENS}, **{w: 2 for w in _TENS}, **{w: 3 for w in _HUNDREDS}}
_VALUE = {**_UNITS, **_TEENS, **_TENS, **_HUNDREDS}
_FILLERS = {"hum", "hm", "hmm", "humm", "hum", "ahn", "han", "ah", "eh", "uh", "uhm", "hein"}
_SPELLED = {"pra": "para", "pro": "para o", "ta": "esta", "to": "estou", "ce": "voce", "perai": "pera ai",
            "okay": "ok", "wifi": "wi fi", "email": "e mail", "whatsapp": "whats app"}


class CorpusUtterance(msgspec.Struct, frozen=True):
    id: str
    kind: str
    text: str
    keys: list[str] = []
    asked: str = ""  # what the agent had just asked, if the utterance answers a question


class Corpus(msgspec.Struct, frozen=True):
    company: str
    domain_terms: list[str]
    utterances: list[CorpusUtterance]


def load_corpus(path: Path = CORPUS_PATH) -> Corpus:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for item in data.get("utterances", []):
        item["keys"] = [str(k) for k in item.get("keys", [])]  # YAML reads a bare 15 as a number
    return msgspec.convert(data, Corpus)


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _written_numbers(text: str) -> str:
    """Money, decimals, percentages and ordinals as they would be said, digits kept."""
    text = re.sub(r"r\$\s*(\d[\d.]*)(?:,(\d\d))?",
                  lambda m: f" {m.group(1)} reais" + (f" e {m.group(2)} centavos" if m.group(2) not in (None, "00") else ""),
                  text)
    text = re.sub(r"(\d),(\d\d)\b", r"\1 e \2", text)  # "79,90" said "setenta e nove e noventa"
    text = re.sub(r"(\d)\s*%", r"\1 por cento", text)
    text = re.sub(r"\b2\s*[ªa]\s+via\b", "segunda via", text)
    text = re.sub(r"(\d)\.(?=\d{3}\b)", r"\1", text)  # thousands separator
    return text


def _is_number_word(tokens: list[str], i: int) -> bool:
    tok = tokens[i]
    if tok == "cento" and i > 0 and tokens[i - 1] == "por":  # "dez por cento"
        return False
    if tok in _VALUE or tok == "mil" or tok.isdigit():
        return True
    if tok == "meia":  # six when dictated ("um um meia dois"), "half" otherwise
        near = [tokens[j] for j in (i - 1, i + 1) if 0 <= j < len(tokens)]
        return any(t in _VALUE or t.isdigit() for t in near)
    return False


def _numbers_to_digits(tokens: list[str]) -> list[str]:
    """Number words to numerals: "cento e doze" -> "112", "um dois tres" -> "1 2 3",
    "setenta e nove e noventa" -> "79 e 90", "mil e quarenta" -> "1040"."""
    out: list[str] = []
    value: int | None = None  # the number being read
    slot = 0  # slot of its last word
    pending_e = False  # an "e" after the number, not yet known to be inside it

    def flush() -> None:
        nonlocal value, pending_e
        if value is not None:
            out.append(str(value))
        if pending_e:
            out.append("e")
        value, pending_e = None, False

    for i, tok in enumerate(tokens):
        if tok == "e" and value is not None and not pending_e:
            pending_e = True
            continue
        numeral = tok.isdigit() and len(tok) <= 4 and not (len(tok) > 1 and tok[0] == "0")
        if not numeral and (tok.isdigit() or not _is_number_word(tokens, i)):
            flush()
            out.append(tok)  # a word, or digits no number word joins ("09122", "98765")
            continue
        if tok == "mil":
            if value is not None and slot < 4 and value < 1000:
                value, slot, pending_e = value * 1000, 4, False
            else:
                flush()
                value, slot = 1000, 4
            continue
        if numeral:  # Whisper mixes: "120 e 9", "1000 e 40", "80 e 8"
            word_value = int(tok)
            word_slot = next(k for k, unit in ((4, 1000), (3, 100), (2, 10), (1, 1))
                             if word_value % unit == 0 and (word_value >= 20 or unit == 1))
        else:
            word_value = 6 if tok == "meia" else _VALUE[tok]
            word_slot = 1 if tok == "meia" else _SLOT[tok]
        joins = value is not None and word_value != 0 and value != 0 and (
            (slot == 4 and word_slot < 4 and value % 1000 == 0 and (pending_e or not numeral))
            or (pending_e and slot == 3 and word_slot < 3 and word_value < 100 and value % 100 == 0
                and tokens[i - 2] != "cem")
            or (pending_e and slot == 2 and word_slot == 1 and word_value < 10)
        )
        if joins:
            value, slot, pending_e = value + word_value, word_slot, False
        else:
            flush()
            value, slot = word_value, word_slot
    flush()
    return out


def normalise(text: str) -> list[str]:
    """The comparable tokens of `text` (see the module's docstring)."""
    text = _written_numbers(_strip_accents(text.lower()))
    # No punctuation, numerals apart from letters ("14h" -> "14 h"); every digit becomes a
    # token of its own at the end ("452.318" -> "4 5 2 3 1 8").
    text = re.sub(r"(?<=\d)(?=[^\W\d])|(?<=[^\W\d])(?=\d)", " ", re.sub(r"[^\w ]+", " ", text))
    tokens: list[str] = []
    for tok in text.split():
        tokens.extend(_SPELLED.get(tok, tok).split())
    tokens = [t for t in _numbers_to_digits(tokens) if t not in _FILLERS]
    return [d for t in tokens for d in (list(t) if t.isdigit() else [t])]


def normalised_text(text: str) -> str:
    return " ".join(normalise(text))


def _contains(tokens: list[str], run: list[str]) -> bool:
    n = len(run)
    return n == 0 or any(tokens[i : i + n] == run for i in range(len(tokens) - n + 1))


def missed_keys(keys: list[str], transcript: str) -> list[str]:
    """The keys (each "a|b" = either) that the transcript does not hold."""
    tokens = normalise(transcript)
    return [key for key in keys if not any(_contains(tokens, normalise(alt)) for alt in key.split("|"))]


class Judgement(msgspec.Struct, frozen=True):
    errors: int  # substitutions + deletions + insertions against the normalised reference
    reference_words: int
    missed: list[str]

    @property
    def meaning_lost(self) -> bool:
        return bool(self.missed)


def judge(reference: str, keys: list[str], transcript: str) -> Judgement:
    ref, hyp = normalised_text(reference), normalised_text(transcript)
    words = len(ref.split())
    if not hyp:
        return Judgement(words, words, missed_keys(keys, transcript))
    out = jiwer.process_words(ref, hyp)
    return Judgement(out.substitutions + out.deletions + out.insertions, words, missed_keys(keys, transcript))


def wer(judgements: list[Judgement]) -> float:
    """Corpus WER: all errors over all reference words."""
    words = sum(j.reference_words for j in judgements)
    return sum(j.errors for j in judgements) / words if words else 0.0
