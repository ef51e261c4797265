"""The turn machine's states and the typed event announcing each change."""

from __future__ import annotations

import enum

import msgspec


class TurnState(str, enum.Enum):
    LISTENING = "listening"  # the caller has the floor (or nobody does)
    THINKING = "thinking"  # the caller's turn ended; the reply is being prepared (fillers may play)
    SPEAKING = "speaking"  # the reply's own audio is on the line
    ENDED = "ended"  # the call is over: nothing more is started


class StateChange(msgspec.Struct, frozen=True):
    state: TurnState
    previous: TurnState
    at: float
    why: str
