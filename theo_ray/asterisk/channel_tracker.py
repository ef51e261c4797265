"""Session id -> the caller's current channel name, kept up to date from AMI events (GAP 7).

The dialplan sets THEO_SESSION_ID=${UNIQUEID} on the caller's channel, so the session id is
also the caller channel's Uniqueid when the call starts. Events keep the name current:
Newchannel (uniqueid -> name), VarSet of THEO_SESSION_ID (session -> channel), Rename (a
channel's new name, e.g. after a masquerade) and Hangup (the channel is gone).

This is only a hint that saves a full Status scan: the AMI client confirms the channel
with `Status` before every Redirect/Hangup, because an event can be missed (reconnect,
event filter) and a masquerade can move the session to a channel with another Uniqueid.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

SESSION_VARIABLE = "THEO_SESSION_ID"


class SessionChannel:
    __slots__ = ("channel", "uniqueid", "hung_up")

    def __init__(self, channel: str, uniqueid: str) -> None:
        self.channel = channel
        self.uniqueid = uniqueid
        self.hung_up = False


def header(event: Mapping[str, object], name: str) -> str:
    """One header as text; AMI may repeat a header, then the last value counts."""
    value = event.get(name, "")
    if isinstance(value, list):
        value = value[-1] if value else ""
    return str(value)


class ChannelTracker:
    """Bounded maps fed by AMI events; the oldest entries are forgotten first."""

    def __init__(self, max_sessions: int = 10000) -> None:
        self._max = max_sessions
        self._sessions: OrderedDict[str, SessionChannel] = OrderedDict()
        self._names: OrderedDict[str, str] = OrderedDict()  # uniqueid -> channel name
        self._by_channel: dict[str, str] = {}  # live channel name -> session id

    def channel_of(self, session_id: str) -> str | None:
        """The last known live channel name of the session's caller, if any."""
        entry = self._sessions.get(session_id)
        if entry is not None:
            return None if entry.hung_up else entry.channel
        return self._names.get(session_id)

    def is_known_gone(self, session_id: str) -> bool:
        entry = self._sessions.get(session_id)
        return entry is not None and entry.hung_up

    def confirm(self, session_id: str, channel: str, uniqueid: str) -> None:
        """Record what Status found, overriding what events said."""
        old = self._sessions.get(session_id)
        if old is not None and self._by_channel.get(old.channel) == session_id:
            del self._by_channel[old.channel]
        self._sessions[session_id] = SessionChannel(channel, uniqueid)
        self._sessions.move_to_end(session_id)
        self._by_channel[channel] = session_id
        while len(self._sessions) > self._max:
            dropped_id, dropped = self._sessions.popitem(last=False)
            if self._by_channel.get(dropped.channel) == dropped_id:
                del self._by_channel[dropped.channel]

    def on_event(self, event: Mapping[str, object]) -> bool:
        """Update from one AMI event; False when the event is not one this tracker uses."""
        name = header(event, "Event")
        if name == "Newchannel":
            self._remember_name(header(event, "Uniqueid"), header(event, "Channel"))
        elif name == "VarSet":
            if header(event, "Variable").lstrip("_") != SESSION_VARIABLE:
                return False
            session_id = header(event, "Value")
            uniqueid = header(event, "Uniqueid")
            # Only the caller's own channel has Uniqueid == session id; the AI leg and other
            # legs carry an inherited copy and must not overwrite the caller's channel.
            if not session_id or uniqueid != session_id:
                return False
            self.confirm(session_id, header(event, "Channel"), uniqueid)
        elif name == "Rename":
            self._rename(header(event, "Channel"), header(event, "Newname"), header(event, "Uniqueid"))
        elif name == "Hangup":
            self._hung_up(header(event, "Channel"), header(event, "Uniqueid"))
        else:
            return False
        return True

    def _remember_name(self, uniqueid: str, channel: str) -> None:
        if uniqueid and channel:
            self._names[uniqueid] = channel
            self._names.move_to_end(uniqueid)
            while len(self._names) > self._max:
                self._names.popitem(last=False)

    def _rename(self, old: str, new: str, uniqueid: str) -> None:
        if not new:
            return
        if uniqueid in self._names:
            self._names[uniqueid] = new
        session_id = self._by_channel.pop(old, None)
        if session_id is not None and session_id in self._sessions:
            self._sessions[session_id].channel = new
            self._by_channel[new] = session_id

    def _hung_up(self, channel: str, uniqueid: str) -> None:
        self._names.pop(uniqueid, None)
        session_id = self._by_channel.get(channel)
        entry = self._sessions.get(session_id) if session_id is not None else None
        # Name AND uniqueid must match: after a masquerade a channel of the old name can be
        # hung up (as "<name><ZOMBIE>", or with the clone's uniqueid) while the call lives on.
        if entry is not None and entry.uniqueid == uniqueid:
            entry.hung_up = True
            del self._by_channel[channel]
