"""What the agent just asked, as the speech-to-text hint for the caller's answer.

Whisper decodes `TranscribeRequest.hint` as text said just before the audio, so the
question it answers makes the answer likelier ("Qual é o seu CPF?" → digits, not "sei
lá"). The hint is the last question of what the agent said (its last sentence ending in
"?"), else the tail of what it said, bounded: a long prompt costs decoding time on every
request and leaves less of Whisper's 448-token context for the answer.

When the question asks for something dictated (CPF, telefone, protocolo, CEP, número,
código), the hint also says digits are coming (`SttHint.expects == "digits"`): a short
cue with the digits written as numerals, the way Whisper then writes them.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

import msgspec

# Words of a question that asks the caller to dictate digits (accents folded, lower case).
DIGIT_QUESTION_WORDS = re.compile(
    r"\b(cpf|cnpj|rg|telefone|celular|whatsapp|protocolo|cep|numero|numeros|codigo|contrato|digitos|"
    r"matricula|conta corrente|agencia)\b"
)
# Appended to a question that asks for digits: Whisper continues the prompt's style, so
# numerals after the question make it expect (and write) digits. Every digit once, in
# order, so that no particular number is suggested. Chosen by measurement (the dictation
# answers, 2 Kokoro voices, clean G.711, beam 5; WER · meaning lost): no hint 8.5 % · 50 %,
# the bare question 11.0 % · 45 %, question + "Os números, um por um:" 11.0 % · 55 %,
# question + this cue 7.2 % · 40 % (README, *Caller understanding*).
DIGITS_CUE = "Número: 0 1 2 3 4 5 6 7 8 9."
_SENTENCE = re.compile(r"[^.!?…]*[.!?…]+|[^.!?…]+$")


class SttHint(msgspec.Struct, frozen=True):
    question: str = ""  # what the agent asked (or the tail of what it said); "" = no hint
    expects: Literal["words", "digits"] = "words"

    @property
    def text(self) -> str:
        """The text given to the decoder (`TranscribeRequest.hint`)."""
        if not self.question:
            return ""
        return f"{self.question} {DIGITS_CUE}" if self.expects == "digits" else self.question


def last_agent_words(turns) -> str:
    """What the agent said last (the newest assistant turn of a ConversationMemory's turns:
    what the caller heard of it when interrupted), "" if nothing yet."""
    return next((t.text for t in reversed(turns) if t.role == "assistant" and t.text), "")


def _folded(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn")


def _bounded_tail(text: str, max_chars: int) -> str:
    """The last `max_chars` characters of `text`, starting at a whole word."""
    if len(text) <= max_chars:
        return text
    tail = text[-max_chars:]
    return tail.split(" ", 1)[1] if " " in tail else tail


def hint_for(agent_said: str, max_chars: int = 160) -> SttHint:
    """The hint for the caller's answer to `agent_said` (the agent's last words the caller
    heard): its last question, else its tail, at most `max_chars`; digits expected when the
    question asks for something dictated."""
    said = " ".join(agent_said.replace("—", " ").split())
    if not said or max_chars <= 0:
        return SttHint()
    sentences = [s.strip() for s in _SENTENCE.findall(said) if s.strip()]
    questions = [s for s in sentences if s.endswith("?")]
    question = _bounded_tail(questions[-1] if questions else said, max_chars)
    expects = "digits" if DIGIT_QUESTION_WORDS.search(_folded(question)) else "words"
    return SttHint(question, expects)
