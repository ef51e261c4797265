"""End-of-turn decision: VAD silence + Smart Turn probability + rules on the partial transcript.

Each rule is one small strategy class that may propose how much silence ends the turn (like
Pipecat's turn strategies); `SmartEndpointer` asks them in priority order and the first one that
speaks decides. Priority, and why:

1. ``max_silence``   — after that much silence the turn is over whatever anything says.
2. ``dictation``     — digits are being dictated (CPF, phone, protocol) and the number is not
                       complete yet: wait long, people pause between groups and the turn model
                       hears each group as a finished phrase.
3. ``turn_marker``   — "né", "tá", "é isso", "obrigado"... at the end: short wait.
4. ``thinking``      — a filled pause or a "let me think" at the end ("hum", "deixa eu ver",
                       "é que assim", "peraí"): the longest wait short of max_silence; people
                       pause longest right after saying they are thinking.
5. ``incomplete``    — visibly unfinished ("Eu quero...", "o problema é", "e"): long wait.
6. ``long_turn``     — a caller several seconds into a statement (a story, a complaint) that
                       does not end in a question: sentences of a story end in full stops, so
                       a full stop there is no hand-over; wait as long as a pause between
                       sentences lasts.
7. ``turn_model``    — Smart Turn is confident either way.
8. ``complete``      — the transcript ends a sentence (. ! ?): short wait.
9. ``base``          — otherwise.

Cheap (string rules on a short transcript): fine on the event loop. The turn probability is
computed elsewhere (`SmartTurn.predict_async`) and passed in.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Protocol

import msgspec

from theo_ray.turn.entities import normalise_phone
from theo_ray.turn.settings import EndpointingSettings
from theo_ray.turn.spoken_digits import SEPARATORS, digit_runs


class EndpointInput(msgspec.Struct, frozen=True):
    transcript: str  # partial (or stable) transcript of the caller's current turn
    silence_ms: float  # trailing silence from the VAD
    turn_probability: float | None = None  # Smart Turn P(complete), when computed
    speech_ms: float = 0.0  # the caller's voiced speech in this turn so far


class Proposal(msgspec.Struct, frozen=True):
    wait_ms: int
    rule: str
    reason: str


class Decision(msgspec.Struct, frozen=True):
    """One endpointing decision, loggable as is (msgspec.json.encode)."""

    end_of_turn: bool
    reason: str
    wait_ms: int  # silence this rule needs before the turn ends
    silence_ms: float
    turn_probability: float | None
    rule: str
    transcript_tail: str = ""


class EndpointRule(Protocol):
    name: str

    def propose(self, given: EndpointInput) -> Proposal | None: ...


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip().lower()


def _is_question(text: str) -> bool:
    """The transcript ends in "?" (closing quotes and brackets aside): it hands the turn over."""
    return text.rstrip().rstrip("\"'”’)").endswith("?")


def _strip_trailing_punct(text: str) -> str:
    return text.rstrip(" \t\n.,;:!?…\"'”’)")


class MaxSilenceRule:
    name = "max_silence"

    def __init__(self, settings: EndpointingSettings) -> None:
        self.settings = settings

    def propose(self, given: EndpointInput) -> Proposal | None:
        limit = self.settings.max_silence_ms
        if given.silence_ms >= limit:
            return Proposal(limit, self.name, f"silence reached the {limit} ms cap")
        return None


# How many digits a dictated number has when it is complete, by the keyword before it.
_EXPECTED_DIGITS = {"cpf": (11,), "cnpj": (14,), "cep": (8,)}
_PHONE_WORDS = {"telefone", "celular", "whatsapp", "zap", "fone"}
_DICTATION_WORDS = set(_EXPECTED_DIGITS) | _PHONE_WORDS | {
    "protocolo", "número", "numero", "rg", "cartão", "cartao", "conta", "agência", "agencia",
    "código", "codigo", "matrícula", "matricula", "pedido", "chamado",
}


class DictationRule:
    """The caller is reading out digits and the number is not finished yet."""

    name = "dictation"

    def __init__(self, settings: EndpointingSettings) -> None:
        self.settings = settings

    def propose(self, given: EndpointInput) -> Proposal | None:
        toks, runs = digit_runs(given.transcript)
        words = [t for t in toks if t not in {".", ",", "-", "/"}]
        if not words:
            return None
        wait = self.settings.dictation_silence_ms
        if words[-1] in _DICTATION_WORDS or (len(words) > 1 and words[-2] in _DICTATION_WORDS
                                             and words[-1] in {"é", "e", "eh"}):
            return Proposal(wait, self.name, f"announced a number ('{words[-1]}') before digits")
        if not runs:
            return None
        last = runs[-1]
        trailing = toks[last.last_token + 1 :]
        trailing_words = [t for t in trailing if t not in {".", ",", "-", "/"}]
        if any(t not in SEPARATORS for t in trailing_words):
            return None  # something was said after the digits
        context = set(toks[max(0, last.first_token - 6) : last.first_token])
        if len(last.digits) < 2 and not trailing_words and not context & _DICTATION_WORDS:
            return None  # "tenho 2": a quantity, not dictation
        for keyword, lengths in _EXPECTED_DIGITS.items():
            if keyword in context and len(last.digits) in lengths:
                return None  # the number is complete; let the other rules decide
        if context & _PHONE_WORDS and len(last.digits) >= 10 and normalise_phone(last.digits):
            return None
        return Proposal(wait, self.name, f"dictating digits ({len(last.digits)} so far)")


class TurnMarkerRule:
    """A word that hands the turn over ends the transcript."""

    name = "turn_marker"

    def __init__(self, settings: EndpointingSettings) -> None:
        self.settings = settings
        markers = sorted((_normalise(m) for m in settings.turn_markers), key=len, reverse=True)
        self._pattern = re.compile(r"(?:^|[\s,])(" + "|".join(map(re.escape, markers)) + r")$")

    def propose(self, given: EndpointInput) -> Proposal | None:
        text = _strip_trailing_punct(_normalise(given.transcript))
        match = self._pattern.search(text)
        if match is None:
            return None
        return Proposal(self.settings.min_silence_ms, self.name,
                        f"ends with turn marker '{match.group(1)}'")


_INCOMPLETE_WORDS = frozenset({
    "o", "a", "os", "as", "um", "uma", "uns", "umas", "de", "do", "da", "dos", "das", "em", "no",
    "na", "nos", "nas", "pra", "pro", "para", "com", "por", "pelo", "pela", "sem", "sobre",
    "que", "e", "ou", "mas", "porque", "porquê", "quando", "se", "como", "então", "aí", "tipo",
    "meu", "minha", "meus", "minhas", "seu", "sua", "é", "hum", "hã", "ahn", "éé", "eee", "mais",
})
_SUBJECT_PRONOUNS = frozenset({"eu", "gente", "nós", "ele", "ela", "eles", "elas", "você", "vocês"})
_WANT_VERBS = frozenset({
    "quero", "queria", "preciso", "precisava", "gostaria", "vou", "ia", "tô", "to", "estou",
    "tava", "estava", "tenho", "tinha", "acho", "posso", "podia", "devo",
})


class IncompleteTailRule:
    """The sentence is visibly unfinished: ellipsis, trailing comma, article, preposition,
    conjunction, filler, or "eu quero"-style subject + verb that needs a complement."""

    name = "incomplete"

    def __init__(self, settings: EndpointingSettings) -> None:
        self.settings = settings

    def propose(self, given: EndpointInput) -> Proposal | None:
        text = _normalise(given.transcript)
        if not text:
            return None
        wait = self.settings.hesitation_silence_ms
        if text.endswith(("...", "…", ",", "-", "—")):
            return Proposal(wait, self.name, "ends with ellipsis/comma (hesitating)")
        words = re.findall(r"\w+", text)
        if not words or words[-1].isdigit():
            return None  # ends with a number: not this rule's business
        if _is_question(text) or (len(words) == 1 and text.endswith((".", "!"))):
            return None  # "Que tipo?", "É." (a yes): finished, whatever the last word
        if words[-1] in _INCOMPLETE_WORDS:
            return Proposal(wait, self.name, f"ends with '{words[-1]}' (needs a continuation)")
        if len(words) >= 2 and words[-1] in _WANT_VERBS and words[-2] in _SUBJECT_PRONOUNS:
            return Proposal(wait, self.name, f"'{words[-2]} {words[-1]}' without a complement")
        return None


# Filled pauses and "let me think/look" phrases that end a transcript while the caller thinks.
_THINKING_TAILS = (
    # Not "é", "bom" or "assim" alone: "É." is a yes, "Muito bom.", "Como assim?".
    "hum", "hmm", "humm", "ahn", "hã", "éé", "ééé", "eee", "deixa eu ver", "deixa eu pensar",
    "deixa eu lembrar", "deixa eu olhar", "deixa eu pegar", "deixa eu achar", "deixa eu procurar",
    "é que assim", "tipo assim", "assim ó", "tipo", "então", "vamos ver", "como é que é",
    "como é o nome", "peraí", "pera aí", "espera aí", "um momento", "só um momento",
    "só um minuto", "só um segundo", "um minutinho", "um segundinho",
)


class ThinkingRule:
    """The transcript ends with a filled pause or a "let me think" phrase."""

    name = "thinking"

    def __init__(self, settings: EndpointingSettings) -> None:
        self.settings = settings
        tails = sorted(_THINKING_TAILS, key=len, reverse=True)
        self._pattern = re.compile(r"(?:^|[\s,])(" + "|".join(map(re.escape, tails)) + r")$")

    def propose(self, given: EndpointInput) -> Proposal | None:
        if _is_question(given.transcript):
            return None  # "Que tipo?": a question hands the turn over
        text = " ".join(re.findall(r"[^\W\d_]+", _normalise(given.transcript)))
        match = self._pattern.search(text)
        if match is None:
            return None
        return Proposal(self.settings.thinking_silence_ms, self.name, f"ends thinking aloud ('{match.group(1)}')")


class LongTurnRule:
    """Several seconds into a statement: a full stop is a pause between sentences of a story."""

    name = "long_turn"

    def __init__(self, settings: EndpointingSettings) -> None:
        self.settings = settings

    def propose(self, given: EndpointInput) -> Proposal | None:
        s = self.settings
        if not s.long_turn_speech_ms or given.speech_ms < s.long_turn_speech_ms:
            return None
        if _is_question(given.transcript):
            return None  # a question hands the turn over
        return Proposal(s.long_turn_silence_ms, self.name,
                        f"{given.speech_ms / 1000:.1f} s into a statement")


class TurnModelRule:
    """Smart Turn is confident the turn ended (or clearly did not)."""

    name = "turn_model"

    def __init__(self, settings: EndpointingSettings) -> None:
        self.settings = settings

    def propose(self, given: EndpointInput) -> Proposal | None:
        p = given.turn_probability
        if p is None:
            return None
        s = self.settings
        if p >= s.turn_complete_threshold:
            return Proposal(s.min_silence_ms, self.name, f"turn model p={p:.2f} complete")
        if p <= s.turn_incomplete_threshold:
            return Proposal(s.hesitation_silence_ms, self.name, f"turn model p={p:.2f} incomplete")
        return None


class CompleteSentenceRule:
    name = "complete"

    def __init__(self, settings: EndpointingSettings) -> None:
        self.settings = settings

    def propose(self, given: EndpointInput) -> Proposal | None:
        text = given.transcript.rstrip().rstrip("\"'”’)")
        if text.endswith((".", "!", "?")) and not text.endswith(("...", "..")):
            return Proposal(self.settings.min_silence_ms, self.name, "ends a sentence")
        return None


class BaseRule:
    name = "base"

    def __init__(self, settings: EndpointingSettings) -> None:
        self.settings = settings

    def propose(self, given: EndpointInput) -> Proposal | None:
        reason = "no transcript yet" if not given.transcript.strip() else "no rule applied"
        return Proposal(self.settings.base_silence_ms, self.name, reason)


class EndpointerStats(msgspec.Struct):
    decisions: int = 0
    ends: int = 0
    by_rule: dict[str, int] = msgspec.field(default_factory=dict)


class SmartEndpointer:
    """Ask the rules in order; the first proposal sets how much silence ends the turn."""

    def __init__(
        self,
        settings: EndpointingSettings | None = None,
        rules: list[EndpointRule] | None = None,
    ) -> None:
        self.settings = settings or EndpointingSettings()
        s = self.settings
        self.rules: list[EndpointRule] = rules or [
            MaxSilenceRule(s), DictationRule(s), TurnMarkerRule(s), ThinkingRule(s), IncompleteTailRule(s),
            LongTurnRule(s), TurnModelRule(s), CompleteSentenceRule(s), BaseRule(s),
        ]
        self.stats = EndpointerStats()

    def decide(
        self, transcript: str, silence_ms: float, turn_probability: float | None = None, speech_ms: float = 0.0
    ) -> Decision:
        given = EndpointInput(transcript, silence_ms, turn_probability, speech_ms)
        proposal = None
        for rule in self.rules:
            proposal = rule.propose(given)
            if proposal is not None:
                break
        if proposal is None:  # only when a custom rule list has no catch-all
            proposal = Proposal(self.settings.base_silence_ms, "base", "no rule applied")
        end = silence_ms >= proposal.wait_ms
        self.stats.decisions += 1
        self.stats.ends += int(end)
        self.stats.by_rule[proposal.rule] = self.stats.by_rule.get(proposal.rule, 0) + 1
        return Decision(
            end_of_turn=end,
            reason=proposal.reason,
            wait_ms=proposal.wait_ms,
            silence_ms=silence_ms,
            turn_probability=turn_probability,
            rule=proposal.rule,
            transcript_tail=transcript.strip()[-60:],
        )
