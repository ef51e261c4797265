"""Conversation memory of one call: turns (with interruption marks), entities kept for the whole
call, and a rolling summary once the history passes a token budget.

The summary comes from a callable the turn loop passes (an async function that asks the LLM);
when it fails, times out or is missing, a deterministic extractive summary is used instead, so
memory never blocks a call. The whole memory round-trips through `MemoryCheckpoint` (msgspec)
so it survives a transfer, a failover to another actor, or the caller coming back.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec

from theo_ray.messages import ChatMessage, ToolCall
from theo_ray.turn.entities import Entity, extract_entities
from theo_ray.turn.settings import MemorySettings

# pt-BR text averages about 3.5 characters per token on Llama/Qwen tokenizers; no tokenizer is
# loaded in the call actor, so the budget is checked with this estimate.
CHARS_PER_TOKEN = 3.5
MESSAGE_OVERHEAD_TOKENS = 4
INTERRUPTION_TAIL_CHARS = 30


class Turn(msgspec.Struct, frozen=True):
    role: Literal["user", "assistant", "tool"]
    text: str
    at: float
    # For an interrupted agent turn: what the caller actually heard (text is then that too).
    interrupted: bool = False
    tool_calls: list[ToolCall] = []
    tool_call_id: str = ""


class MemoryCheckpoint(msgspec.Struct, frozen=True):
    """Everything memory holds; `ConversationMemory.from_checkpoint` rebuilds it."""

    turns: list[Turn]
    entities: list[Entity]
    summary: str
    caller_turns: int
    version: int = 1


class MemoryStats(msgspec.Struct):
    summaries: int = 0
    summary_fallbacks: int = 0  # extractive summary used (summarizer missing, failed, slow)
    entities_found: int = 0
    caller_text_truncated: int = 0  # caller turns cut to memory.max_caller_chars


Summarizer = Callable[[str, list[Turn]], Awaitable[str]]
"""(previous summary, turns to fold in) -> new summary, pt-BR, a few sentences."""


def _without_cut_mark(heard: str) -> str:
    return heard.strip().rstrip("—").rstrip()


def interruption_mark(heard: str) -> str:
    """``[interrompido em: "...transferir para o supo—"]`` from the text the caller heard."""
    heard = _without_cut_mark(heard)  # one "—" whether or not the text already ends with one
    tail = heard[-INTERRUPTION_TAIL_CHARS:]
    prefix = ""
    if len(heard) > INTERRUPTION_TAIL_CHARS:
        prefix = "..."
        if not heard[-INTERRUPTION_TAIL_CHARS - 1].isspace() and " " in tail:
            tail = tail.split(" ", 1)[1]  # start the quote at a whole word
    tail = tail.lstrip()
    return f'[interrompido em: "{prefix}{tail}—"]'


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS


_ENTITY_LABELS = {
    "name": "Nome", "cpf": "CPF", "phone": "Telefone", "protocol": "Protocolo",
    "date": "Data mencionada", "money": "Valor mencionado",
}
_SINGLE_KINDS = ("name", "cpf", "phone")  # only the latest value counts
_LIST_KINDS = ("protocol", "date", "money")  # every value counts (last few)
_LIST_KEEP = 5


class ConversationMemory:
    def __init__(
        self,
        settings: MemorySettings | None = None,
        summarizer: Summarizer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or MemorySettings()
        self.summarizer = summarizer
        self._clock = clock
        self.turns: list[Turn] = []
        self.entities: list[Entity] = []
        self.summary = ""
        self.caller_turns = 0
        self.stats = MemoryStats()
        self._summarising = False

    # ------------------------------------------------------------------ adding

    def add_caller(self, text: str) -> list[Entity]:
        """Record what the caller said; return the entities that are new in it."""
        if len(text) > self.settings.max_caller_chars:
            text = text[: self.settings.max_caller_chars] + "…"
            self.stats.caller_text_truncated += 1
        self.turns.append(Turn("user", text, self._clock()))
        new = []
        for entity in extract_entities(text, turn=self.caller_turns):
            if not any(e.kind == entity.kind and e.value == entity.value for e in self.entities):
                self.entities.append(entity)
                new.append(entity)
        self.stats.entities_found += len(new)
        self.caller_turns += 1
        return new

    def add_agent(
        self, text: str, heard: str | None = None, tool_calls: list[ToolCall] | None = None
    ) -> Turn:
        """Record an agent turn. ``heard`` is set when the caller interrupted it: what they
        actually heard (from samples played), which replaces ``text`` in memory. Stored
        without the turn loop's trailing cut mark "—": `interrupted` says it, and the
        message adds its own mark (`interruption_mark`)."""
        interrupted = heard is not None
        kept = _without_cut_mark(heard) if interrupted else text
        turn = Turn("assistant", kept, self._clock(), interrupted, list(tool_calls or []))
        self.turns.append(turn)
        return turn

    def add_tool_result(self, tool_call_id: str, content: str) -> None:
        self.turns.append(Turn("tool", content, self._clock(), tool_call_id=tool_call_id))

    # ------------------------------------------------------------------ reading

    def current_entities(self) -> list[Entity]:
        """Latest name/CPF/phone, and the last few protocols/dates/amounts."""
        chosen: list[Entity] = []
        for kind in _SINGLE_KINDS:
            of_kind = [e for e in self.entities if e.kind == kind]
            if of_kind:
                chosen.append(of_kind[-1])
        for kind in _LIST_KINDS:
            chosen.extend([e for e in self.entities if e.kind == kind][-_LIST_KEEP:])
        return chosen

    def entity_block(self) -> str:
        lines = []
        for e in self.current_entities():
            note = "" if e.valid else " (inválido: confirme com o cliente)"
            lines.append(f"- {_ENTITY_LABELS[e.kind]}: {e.display}{note}")
        return "Dados do cliente nesta ligação:\n" + "\n".join(lines) if lines else ""

    def to_messages(self, system_prompt: str) -> list[ChatMessage]:
        """System prompt + entities + summary in ONE system message (several chat templates
        accept a system message only at the start), then the turns."""
        system = system_prompt.rstrip()
        if block := self.entity_block():
            system += "\n\n" + block
        if self.summary:
            system += "\n\nResumo da conversa até aqui: " + self.summary
        messages = [ChatMessage("system", system)]
        for turn in self.turns:
            messages.append(_turn_message(turn))
        return messages

    def estimated_tokens(self) -> int:
        return sum(estimate_tokens(_turn_message(t).content) for t in self.turns)

    @property
    def needs_summary(self) -> bool:
        return (self.estimated_tokens() > self.settings.token_budget
                and len(self.turns) > self.settings.keep_recent_turns)

    # ------------------------------------------------------------------ summary

    async def summarise(self) -> bool:
        """Fold the oldest turns into the summary if over budget. Call it off the critical
        path (after a turn is spoken); returns whether anything was folded."""
        if self._summarising or not self.needs_summary:
            return False
        self._summarising = True
        try:
            cut = len(self.turns) - self.settings.keep_recent_turns
            while cut < len(self.turns) and self.turns[cut].role == "tool":
                cut += 1  # never separate a tool result from the call that asked for it
            folded = self.turns[:cut]
            summary = await self._summary_of(folded)
            # Turns only get appended meanwhile, so the folded ones are still the first `cut`.
            del self.turns[:cut]
            self.summary = summary[: self.settings.summary_max_chars]
            self.stats.summaries += 1
            return True
        finally:
            self._summarising = False

    async def _summary_of(self, folded: list[Turn]) -> str:
        if self.summarizer is not None:
            try:
                text = await asyncio.wait_for(
                    self.summarizer(self.summary, folded), self.settings.summary_timeout_s
                )
                if text and text.strip():
                    return text.strip()
            except Exception:  # noqa: BLE001 - any summarizer failure falls back, never kills the call
                pass
        self.stats.summary_fallbacks += 1
        return extractive_summary(self.summary, folded, self.settings.summary_max_chars)

    # ------------------------------------------------------------------ checkpoint

    def checkpoint(self) -> MemoryCheckpoint:
        return MemoryCheckpoint(list(self.turns), list(self.entities), self.summary,
                                self.caller_turns)

    def encode(self) -> bytes:
        return msgspec.msgpack.encode(self.checkpoint())

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: MemoryCheckpoint | bytes,
        settings: MemorySettings | None = None,
        summarizer: Summarizer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> ConversationMemory:
        if isinstance(checkpoint, (bytes, bytearray, memoryview)):
            checkpoint = msgspec.msgpack.decode(checkpoint, type=MemoryCheckpoint)
        memory = cls(settings, summarizer, clock)
        memory.turns = list(checkpoint.turns)
        memory.entities = list(checkpoint.entities)
        memory.summary = checkpoint.summary
        memory.caller_turns = checkpoint.caller_turns
        return memory


def _turn_message(turn: Turn) -> ChatMessage:
    if turn.role == "tool":
        return ChatMessage("tool", turn.text, tool_call_id=turn.tool_call_id)
    content = turn.text
    if turn.interrupted:
        content = f"{turn.text.rstrip()} {interruption_mark(turn.text)}".strip()
    return ChatMessage(turn.role, content, tool_calls=list(turn.tool_calls))


_FIRST_SENTENCE = re.compile(r"^(.+?[.!?])(?:\s|$)")
_SENTENCE_MAX = 120


def extractive_summary(previous: str, folded: list[Turn], max_chars: int) -> str:
    """Deterministic fallback: the first sentence of each folded caller/agent turn, appended to
    the previous summary; when too long, the oldest part is dropped."""
    parts = [previous.strip()] if previous.strip() else []
    for turn in folded:
        if turn.role == "tool" or not turn.text.strip():
            continue
        text = " ".join(turn.text.split())
        match = _FIRST_SENTENCE.match(text)
        sentence = (match.group(1) if match else text)[:_SENTENCE_MAX]
        who = "Cliente" if turn.role == "user" else "Agente"
        cut = " (interrompido)" if turn.interrupted else ""
        parts.append(f"{who}: {sentence}{cut}")
    summary = " | ".join(parts)
    if len(summary) > max_chars:
        summary = "…" + summary[-(max_chars - 1) :]
    return summary
