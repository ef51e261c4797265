"""How a simulated call ended, as the simulator saw it, and whether its task was completed.

The caller runner and the agent's record fill :class:`CallOutcome`; the conversation
summary and the scenario checks read it.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class CallOutcome(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How the call ended, as the simulator saw it."""

    ended_by: Literal["caller", "agent", "transfer", "error", "timeout"]
    transferred: bool = False
    transfer_target: str = ""
    # The agent's stated reason for the transfer (the transfer tool call's argument).
    transfer_reason: str = ""
    error: str = ""


def task_completion(outcome: CallOutcome) -> tuple[bool, str]:
    """(completed, why): a call resolved unless it was transferred, broke or hit its time limit."""
    if outcome.transferred or outcome.ended_by == "transfer":
        return False, f"transferred: {outcome.transfer_reason or 'no reason given'}"
    if outcome.ended_by == "error":
        return False, f"error: {outcome.error or 'unknown'}"
    if outcome.ended_by == "timeout":
        return False, "timeout: the call hit its time limit"
    return True, f"resolved (hung up by the {outcome.ended_by})"
