"""Entities a caller says (name, CPF, phone, protocol, dates, money) pulled from pt-BR text.

Rules and regular expressions, not a model: they run on every caller turn inside the actor and
must be exact about digits (a CPF is only kept with its check digits verified; an invalid one is
kept *as invalid* so the agent can ask again). Digits may be spoken ("um dois três") or written
by the STT in any grouping ("123.456.789-09", "1, 2, 3"); see `spoken_digits`.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Literal

import msgspec

from theo_ray.turn.spoken_digits import digit_runs, number_word_value

EntityKind = Literal["name", "cpf", "phone", "protocol", "date", "money"]


class Entity(msgspec.Struct, frozen=True):
    kind: EntityKind
    value: str  # normalised: digits only, ISO date, decimal amount, title-cased name
    display: str  # how a person writes it: 123.456.789-09, (11) 98765-4321, R$ 1.234,56
    valid: bool = True
    turn: int = 0  # index of the caller turn it came from


# ------------------------------------------------------------------ CPF and phone


def cpf_is_valid(digits: str) -> bool:
    """CPF check digits (mod 11); all-equal sequences are invalid by rule."""
    if len(digits) != 11 or not digits.isdigit() or digits == digits[0] * 11:
        return False
    for n in (9, 10):
        total = sum(int(digits[i]) * (n + 1 - i) for i in range(n))
        if (total * 10) % 11 % 10 != int(digits[n]):
            return False
    return True


def format_cpf(digits: str) -> str:
    if len(digits) != 11:
        return digits
    return f"{digits[:3]}.{digits[3:6]}.{digits[6:9]}-{digits[9:]}"


def normalise_phone(digits: str) -> str | None:
    """Brazilian phone digits (DDD + number, or number alone), or None if implausible."""
    if len(digits) in (12, 13) and digits.startswith("55"):
        digits = digits[2:]
    if len(digits) in (11, 12) and digits.startswith("0"):
        digits = digits[1:]  # long-distance prefix "0 + DDD"
    if len(digits) in (10, 11):
        ddd, local = digits[:2], digits[2:]
        if "0" in ddd:
            return None
        if len(local) == 9 and local[0] != "9":
            return None  # 9-digit numbers are mobiles and start with 9
        if len(local) == 8 and local[0] not in "2345":
            return None  # landlines
        return digits
    if len(digits) == 9 and digits[0] == "9" or len(digits) == 8 and digits[0] in "2345":
        return digits
    return None


def format_phone(digits: str) -> str:
    if len(digits) in (10, 11):
        local = digits[2:]
        return f"({digits[:2]}) {local[:-4]}-{local[-4:]}"
    return f"{digits[:-4]}-{digits[-4:]}"


_CPF_WORDS = {"cpf"}
_PHONE_WORDS = {"telefone", "celular", "whatsapp", "zap", "contato", "fone", "número", "numero"}
_PROTOCOL_WORDS = {"protocolo", "chamado", "ticket", "ocorrência", "ocorrencia", "pedido"}
_CONTEXT_TOKENS = 6  # how far before a digit run its keyword may be


def _digit_entities(text: str, turn: int) -> list[Entity]:
    toks, runs = digit_runs(text)
    found: list[Entity] = []
    for run in runs:
        context = set(toks[max(0, run.first_token - _CONTEXT_TOKENS) : run.first_token])
        digits = run.digits
        if context & _CPF_WORDS:
            found.append(Entity("cpf", digits, format_cpf(digits), cpf_is_valid(digits), turn))
        elif context & _PROTOCOL_WORDS:
            if len(digits) >= 4:
                found.append(Entity("protocol", digits, digits, True, turn))
        elif context & _PHONE_WORDS:
            phone = normalise_phone(digits)
            if phone is not None:
                found.append(Entity("phone", phone, format_phone(phone), True, turn))
            elif len(digits) >= 8:
                found.append(Entity("phone", digits, digits, False, turn))
        elif len(digits) == 11 and cpf_is_valid(digits):
            found.append(Entity("cpf", digits, format_cpf(digits), True, turn))
        elif len(digits) in (10, 11, 13) and (phone := normalise_phone(digits)) is not None:
            found.append(Entity("phone", phone, format_phone(phone), True, turn))
    return found


_PROTOCOL_ALNUM = re.compile(
    r"\b(?:protocolo|chamado|ticket)\s+(?:n[º°o.]*\s*|número\s+|numero\s+)?(?:é\s+)?"
    r"([A-Z]{1,4}[-\s]?\d{3,}[A-Z0-9]*)\b",
    re.IGNORECASE,
)


def _protocol_codes(text: str, turn: int) -> list[Entity]:
    found = []
    for match in _PROTOCOL_ALNUM.finditer(text):
        code = re.sub(r"[\s-]", "", match.group(1)).upper()
        found.append(Entity("protocol", code, code, True, turn))
    return found


# ------------------------------------------------------------------ money

_AMOUNT = r"(\d{1,3}(?:\.\d{3})+|\d+)(?:,(\d{1,2}))?"
_MONEY_SYMBOL = re.compile(r"R\$\s*" + _AMOUNT)
_MONEY_WORD = re.compile(r"\b" + _AMOUNT + r"\s*(?:reais|real)\b(?:\s+e\s+(\d{1,2})\s+centavos)?",
                         re.IGNORECASE)


def format_money(amount: Decimal) -> str:
    whole, cents = f"{amount:.2f}".split(".")
    return f"R$ {int(whole):,}".replace(",", ".") + f",{cents}"


def _money(text: str, turn: int) -> list[Entity]:
    amounts: list[Decimal] = []
    for pattern in (_MONEY_SYMBOL, _MONEY_WORD):
        for match in pattern.finditer(text):
            whole = match.group(1).replace(".", "")
            if match.group(2):
                cents = match.group(2).ljust(2, "0")  # ",5" is fifty cents
            elif pattern is _MONEY_WORD and match.group(3):
                cents = match.group(3).zfill(2)  # "e 5 centavos" is five
            else:
                cents = "0"
            try:
                amounts.append(Decimal(whole) + Decimal(cents) / 100)
            except InvalidOperation:
                continue
    # Spoken amounts: "cento e cinquenta reais".
    toks, runs = digit_runs(text)
    for run in runs:
        after = toks[run.last_token + 1 : run.last_token + 2]
        if run.spoken_words and after and after[0] in ("reais", "real"):
            amounts.append(Decimal(run.digits))
    seen: set[Decimal] = set()
    found = []
    for amount in amounts:
        if amount not in seen:
            seen.add(amount)
            found.append(Entity("money", f"{amount:.2f}", format_money(amount), True, turn))
    return found


# ------------------------------------------------------------------ dates

MONTHS = {
    "janeiro": 1, "fevereiro": 2, "março": 3, "marco": 3, "abril": 4, "maio": 5, "junho": 6,
    "julho": 7, "agosto": 8, "setembro": 9, "outubro": 10, "novembro": 11, "dezembro": 12,
}
_NUMERIC_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?\b")
_SPOKEN_DATE = re.compile(
    r"\b(?:dia\s+)?(\d{1,2}|primeiro|[a-zç]+(?:\s+e\s+[a-zç]+)?)\s+de\s+("
    + "|".join(MONTHS) + r")(?:\s+de\s+(\d{4}))?\b",
    re.IGNORECASE,
)


def _date_entity(day: int, month: int, year: int | None, turn: int) -> Entity | None:
    if not (1 <= day <= 31 and 1 <= month <= 12):
        return None
    if year is not None and year < 100:
        year += 2000
    if year is not None:
        return Entity("date", f"{year:04d}-{month:02d}-{day:02d}",
                      f"{day:02d}/{month:02d}/{year:04d}", True, turn)
    return Entity("date", f"--{month:02d}-{day:02d}", f"{day:02d}/{month:02d}", True, turn)


def _spoken_day(word: str) -> int | None:
    word = word.lower()
    if word.isdigit():
        return int(word)
    if word == "primeiro":
        return 1
    parts = [p for p in word.split() if p != "e"]
    values = [number_word_value(p) for p in parts]
    if not values or any(v is None for v in values):
        return None
    return sum(values)  # "vinte e cinco" → 25


def _dates(text: str, turn: int) -> list[Entity]:
    found = []
    for match in _NUMERIC_DATE.finditer(text):
        year = int(match.group(3)) if match.group(3) else None
        entity = _date_entity(int(match.group(1)), int(match.group(2)), year, turn)
        if entity:
            found.append(entity)
    for match in _SPOKEN_DATE.finditer(text):
        day = _spoken_day(match.group(1))
        if day is None:
            continue
        year = int(match.group(3)) if match.group(3) else None
        entity = _date_entity(day, MONTHS[match.group(2).lower()], year, turn)
        if entity:
            found.append(entity)
    return found


# ------------------------------------------------------------------ names

_NAME_WORD = r"[A-Za-zÀ-ÖØ-öø-ÿ]+"
_NAME_PATTERNS = (
    # (pattern, the name must be capitalised in the transcript)
    (re.compile(r"\b(?:meu nome é|meu nome e|me chamo|pode me chamar de)\s+(.+)", re.I), False),
    (re.compile(r"\b(?:aqui é|aqui quem fala é|quem fala é|eu sou|sou|falo com)\s+(?:o|a)?\s*(.+)",
                re.I), True),
)
_NAME_PARTICLES = {"da", "de", "do", "das", "dos"}
_NAME_STOP = {
    "e", "eu", "que", "quero", "queria", "preciso", "gostaria", "tô", "to", "estou", "aqui",
    "não", "nao", "sim", "tudo", "bem", "com", "pra", "para", "cliente", "mas", "porque",
    "sou", "já", "ja", "ligando", "falando", "tenho", "o", "a", "meu", "minha", "um", "uma",
}


def _names(text: str, turn: int) -> list[Entity]:
    found = []
    for pattern, needs_capital in _NAME_PATTERNS:
        for match in pattern.finditer(text):
            words: list[str] = []
            for word in re.findall(_NAME_WORD, match.group(1)):
                lowered = word.lower()
                if lowered in _NAME_STOP or len(words) >= 4:
                    break
                words.append(word)
            while words and words[-1].lower() in _NAME_PARTICLES:
                words.pop()
            if not words or words[0].lower() in _NAME_PARTICLES:
                continue
            if needs_capital and not words[0][0].isupper():
                continue
            name = " ".join(w.lower() if w.lower() in _NAME_PARTICLES else w.capitalize()
                            for w in words)
            found.append(Entity("name", name, name, True, turn))
    return found[:1]


def extract_entities(text: str, turn: int = 0) -> list[Entity]:
    """Every entity found in one caller utterance, in a stable order (kind, then position)."""
    codes = _protocol_codes(text, turn)
    digit_entities = [
        e for e in _digit_entities(text, turn)
        if not (e.kind == "protocol" and any(c.value.endswith(e.value) for c in codes))
    ]
    found = _names(text, turn) + digit_entities + codes
    found += _dates(text, turn) + _money(text, turn)
    unique: list[Entity] = []
    for entity in found:
        if not any(e.kind == entity.kind and e.value == entity.value for e in unique):
            unique.append(entity)
    return unique
