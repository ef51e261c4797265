"""CallerGate: what the turn machine does with the caller's final transcript before the
language model sees it — answer it, ask the caller to repeat, or read a dictated number back.

- Whisper unsure of the whole turn (its duration-weighted log-probability under
  `conversation.low_confidence_logprob`): "não entendi, pode repetir?", once in a row.
- A dictated number with a digit heard at a low probability (`readback.py`): read back for
  confirmation; a yes hands the model the turn that was read back, a no asks for the number
  again.
Counted on the call record (`repeat_requests`, `readbacks`) and on the turn. It also gives
the STT hint for the caller's next words (stt_hint.py): the read-back they answer, else what
the agent said last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

from theo_ray.conversation.readback import ReadBackTracker
from theo_ray.conversation.records import CallRecord, TurnRecord
from theo_ray.conversation.settings import ConversationSettings
from theo_ray.conversation.stt_hint import hint_for, last_agent_words
from theo_ray.messages import Word


class GateVerdict(msgspec.Struct, frozen=True):
    action: Literal["answer", "repeat", "read_back"]
    text: str = ""  # answer: what the model is given; read_back: what the agent says
    key: str = ""  # repeat: the phrase book's key of what the agent says


class CallerGate:
    def __init__(self, settings: ConversationSettings, record: CallRecord) -> None:
        self.settings = settings
        self.record = record
        self.readbacks = ReadBackTracker(
            settings.readback_word_probability, settings.readback_min_digits, settings.readback_max_in_a_row
        )

    def judge(self, turn: TurnRecord, words: Sequence[Word]) -> GateVerdict:
        """The verdict on `turn` (its caller_text and caller_logprob set), counted."""
        previous = self.record.turns[-1] if self.record.turns else None
        low = turn.caller_logprob < self.settings.low_confidence_logprob < 0.0
        if low and not (previous is not None and previous.asked_to_repeat):
            return self._repeat(turn, "didnt_catch")
        text = turn.caller_text
        if self.readbacks.pending is not None:
            answer, text = self.readbacks.resolve(text)
            if answer == "no":
                return self._repeat(turn, "readback_denied")
            if answer == "yes":
                turn.readback_confirmed = True
                return GateVerdict("answer", text)
        readback = self.readbacks.check(text, words)
        if readback is None:
            return GateVerdict("answer", text)
        turn.read_back = " ".join(r.digits for r in readback.runs)
        self.record.readbacks += 1
        return GateVerdict("read_back", readback.phrase)

    def _repeat(self, turn: TurnRecord, key: str) -> GateVerdict:
        turn.asked_to_repeat = True
        self.record.repeat_requests += 1
        return GateVerdict("repeat", key=key)

    def stt_hint(self, memory_turns) -> str:
        """The STT hint for the caller's next words: the read-back they are answering, else
        what the agent said last (a ConversationMemory's turns), per conversation.stt_hint."""
        if self.settings.stt_hint == "off":
            return ""
        pending = self.readbacks.pending
        said = pending.phrase if pending is not None else last_agent_words(memory_turns)
        hint = hint_for(said, self.settings.stt_hint_max_chars)
        return hint.text if self.settings.stt_hint == "always" or hint.expects == "digits" else ""
