"""Reading AMI answers: success or not, "channel gone" messages, Status events.

panoramisk answers an action with one Message, or a list (the response, then the events
of an event-list action such as Status); these helpers take either.
"""

from __future__ import annotations

from typing import Any

from panoramisk.message import Message

from theo_ray.asterisk.channel_tracker import header
from theo_ray.asterisk.results import ChannelInfo


def first(answer: Any) -> Message:
    """The response itself (the first message of an event list)."""
    return answer[0] if isinstance(answer, list) else answer


def is_success(answer: Any) -> bool:
    return header(first(answer), "Response") == "Success"


def means_channel_gone(message: str) -> bool:
    text = message.lower()
    return "no such channel" in text or "does not exist" in text or "not up" in text


def channel_info(event: Message) -> ChannelInfo:
    """One Status event, with the channel variables it was asked for."""
    raw = event.get("Variable", [])
    items = raw if isinstance(raw, list) else [raw]
    variables = {}
    for item in items:
        name, sep, value = str(item).partition("=")
        if sep:
            variables[name.lstrip("_")] = value  # "__X" is inherited X: the name is the same
    return ChannelInfo(
        channel=header(event, "Channel"),
        uniqueid=header(event, "Uniqueid"),
        state=header(event, "ChannelStateDesc"),
        context=header(event, "Context"),
        exten=header(event, "Exten"),
        priority=header(event, "Priority"),
        variables=variables,
    )
