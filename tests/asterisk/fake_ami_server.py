"""TEST DOUBLE -- not Asterisk. An AMI server on 127.0.0.1 that speaks the Manager protocol
the way Asterisk 22 does, for tests and fault injection where a real PBX cannot run.

Written from Asterisk's AMI documentation (docs.asterisk.org, Asterisk 22 AMI Actions and
Events) and manager.c's messages:
- banner `Asterisk Call Manager/<version>` on connect; frames are `Key: Value` lines ended
  by a blank line (CRLF); every response echoes the action's ActionID;
- Login: `Response: Success` / `Message: Authentication accepted`, then a FullyBooted event;
  bad credentials: `Response: Error` / `Message: Authentication failed` and the connection
  is closed; any other action before login: `Message: Permission denied`;
- Ping: `Response: Success`, `Ping: Pong`, `Timestamp: <epoch>.<usec>`;
- Status [Channel] [Variables]: `Response: Success`, `EventList: start`,
  `Message: Channel status will follow`, one `Event: Status` per channel (with
  `Variable: NAME=value` lines for the requested variables), then `Event: StatusComplete`,
  `EventList: Complete`, `ListItems`/`Items`; an unknown Channel: `Message: No such channel`;
- Redirect: `Message: Redirect successful`, then the caller's BridgeLeave, the AI leg's
  BridgeLeave and Hangup, and the caller's Newexten in the new context; an unknown channel:
  `Message: Channel does not exist: <name>`;
- Hangup: `Message: Channel Hungup`, then Hangup events; unknown: `Message: No such channel`;
- events of a call: Newchannel, VarSet (THEO_SESSION_ID, THEO_LEG), Rename, Hangup.

Faults: delayed or unanswered Pings, delays per action, dropping the connection when an
action arrives (before or after executing it), raw bytes (malformed frames), restarts.
Actions on one connection are handled one after another, as Asterisk's session thread does.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Literal

EOL = "\r\n"


@dataclass
class FakeChannel:
    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    priority: int = 1
    state: str = "Up"
    caller_num: str = ""
    variables: dict[str, str] = field(default_factory=dict)  # names as set, e.g. "__THEO_SESSION_ID"
    bridged_with: str = ""  # name of the other channel in its bridge
    bridge_id: str = ""
    application: str = ""

    def get(self, name: str) -> str:
        for key, value in self.variables.items():
            if key.lstrip("_") == name:
                return value
        return ""


@dataclass
class _Session:
    writer: asyncio.StreamWriter
    authenticated: bool = False
    events: bool = True


class FakeAsteriskAmi:
    """TEST DOUBLE of Asterisk 22's AMI (see module docstring)."""

    def __init__(self, users: dict[str, str] | None = None, version: str = "9.0.0") -> None:
        self.users = dict(users or {"theo": "s3cret"})
        self.version = version
        self.channels: dict[str, FakeChannel] = {}
        self.received: list[dict[str, str]] = []  # every action, in arrival order
        self.executed: list[tuple[str, str]] = []  # (action, channel) really carried out
        self.ping_delay_s = 0.0
        self.action_delay_s: dict[str, float] = {}
        # action name (lower case) -> when to drop the connection: "before" executing it, or
        # "after" executing it but before answering. One-shot.
        self.drop_on: dict[str, Literal["before", "after"]] = {}
        self._server: asyncio.AbstractServer | None = None
        self._sessions: list[_Session] = []
        self._tasks: set[asyncio.Task] = set()
        self._port = 0
        self._ids = itertools.count(1)
        self._epoch = int(time.time())

    # ------------------------------------------------------------------ server

    @property
    def port(self) -> int:
        return self._port

    @property
    def connections(self) -> int:
        return len(self._sessions)

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port or self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        return self._port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.drop_connections()
        # Aborted connections end their handlers (EOF); cancelling them instead makes
        # asyncio's stream callback log a CancelledError.
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)

    def drop_connections(self) -> None:
        for session in list(self._sessions):
            session.writer.transport.abort()
        self._sessions.clear()

    def inject_raw(self, data: bytes) -> None:
        """Write bytes as they are to every logged-in connection (malformed input tests)."""
        for session in self._sessions:
            if session.authenticated:
                session.writer.write(data)

    # ------------------------------------------------------------------ call scenarios

    def add_inbound_call(self, caller_num: str = "11987654321", theo_endpoint: str = "theo") -> str:
        """A caller dialled into theo-inbound and is bridged with the AI leg; returns the
        session id (= the caller channel's Uniqueid), with the events Asterisk emits."""
        n = next(self._ids)
        uniqueid = f"{self._epoch}.{n}"
        caller = FakeChannel(
            name=f"PJSIP/trunk-{n:08x}", uniqueid=uniqueid, linkedid=uniqueid,
            context="theo-inbound", exten="8000", priority=1, state="Ring", caller_num=caller_num,
        )
        self.channels[caller.name] = caller
        self._emit_channel_event("Newchannel", caller)
        caller.state = "Up"
        self._set_var(caller, "__THEO_SESSION_ID", uniqueid)
        self._set_var(caller, "THEO_LEG", "caller")
        m = next(self._ids)
        leg = FakeChannel(
            name=f"PJSIP/{theo_endpoint}-{m:08x}", uniqueid=f"{self._epoch}.{m}", linkedid=uniqueid,
            context="theo-from-theo", exten="s", state="Up",
            variables={"__THEO_SESSION_ID": uniqueid},  # inherited: no VarSet event
        )
        self.channels[leg.name] = leg
        self._emit_channel_event("Newchannel", leg)
        bridge = f"bridge-{n}"
        caller.bridged_with, leg.bridged_with = leg.name, caller.name
        caller.bridge_id = leg.bridge_id = bridge
        caller.priority, caller.application = 7, "Dial"
        return uniqueid

    def caller_channel(self, session_id: str) -> FakeChannel:
        for channel in self.channels.values():
            if channel.get("THEO_SESSION_ID") == session_id and channel.get("THEO_LEG") == "caller":
                return channel
        raise KeyError(session_id)

    def rename_channel(self, old: str, new: str, *, emit_event: bool = True) -> None:
        """The channel changes name (masquerade, Local channel optimisation, ...)."""
        channel = self.channels.pop(old)
        channel.name = new
        self.channels[new] = channel
        if channel.bridged_with in self.channels:
            self.channels[channel.bridged_with].bridged_with = new
        if emit_event:
            self._emit({"Event": "Rename", "Privilege": "call,all", "Channel": old,
                        "Newname": new, "Uniqueid": channel.uniqueid})

    def masquerade(self, old: str, new: str) -> None:
        """A new channel object takes over the call: new name AND new Uniqueid, the call's
        variables move with it; the old channel is hung up as a zombie. No Rename for `new`."""
        channel = self.channels.pop(old)
        zombie = FakeChannel(name=f"{old}<ZOMBIE>", uniqueid=channel.uniqueid, linkedid=channel.linkedid,
                             context=channel.context, exten=channel.exten)
        m = next(self._ids)
        channel.name, channel.uniqueid = new, f"{self._epoch}.{m}"
        self.channels[new] = channel
        if channel.bridged_with in self.channels:
            self.channels[channel.bridged_with].bridged_with = new
        self._emit_channel_event("Newchannel", channel)
        self._emit_channel_event("Hangup", zombie, {"Cause": "16", "Cause-txt": "Normal Clearing"})

    def hangup_channel(self, name: str, cause: int = 16) -> None:
        """The channel hangs up (e.g. the caller put the phone down); its bridge peer too."""
        channel = self.channels.pop(name, None)
        if channel is None:
            return
        self._emit_channel_event("Hangup", channel, {"Cause": str(cause), "Cause-txt": _cause_text(cause)})
        peer = self.channels.pop(channel.bridged_with, None)
        if peer is not None:
            self._emit_channel_event("Hangup", peer, {"Cause": str(cause), "Cause-txt": _cause_text(cause)})

    # ------------------------------------------------------------------ protocol

    def peer_hosts(self) -> list[str]:
        """The source address of every connection open now."""
        return [s.writer.get_extra_info("peername")[0] for s in self._sessions]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        session = _Session(writer)
        self._sessions.append(session)
        writer.write(f"Asterisk Call Manager/{self.version}{EOL}".encode())
        ending = "close"
        try:
            while True:
                action = await _read_action(reader)
                if action is None:
                    break
                ending = await self._handle(session, action)
                if ending != "keep":
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            ending = "drop"
        finally:
            if session in self._sessions:
                self._sessions.remove(session)
            if ending == "close":
                # Like Asterisk after a failed login or Logoff: the answer is sent, then EOF.
                writer.close()
            else:
                writer.transport.abort()
            self._tasks.discard(task)

    async def _handle(self, session: _Session, action: dict[str, str]) -> Literal["keep", "close", "drop"]:
        """Answer one action; then keep the connection, close it cleanly, or drop it."""
        self.received.append(action)
        name = action.get("action", "")
        key = name.lower()
        action_id = action.get("actionid")
        delay = self.ping_delay_s if key == "ping" else self.action_delay_s.get(key, 0.0)
        if delay:
            await asyncio.sleep(delay)
        drop = self.drop_on.pop(key, None)
        if drop == "before":
            return "drop"
        if key == "login":
            return self._login(session, action, action_id)
        if key == "logoff":
            self._respond(session, action_id, "Goodbye", {"Message": "Thanks for all the fish."})
            return "close"
        if not session.authenticated:
            self._respond(session, action_id, "Error", {"Message": "Permission denied"})
            return "keep"
        handler = {
            "ping": self._ping,
            "status": self._status,
            "redirect": self._redirect,
            "hangup": self._hangup,
        }.get(key)
        if handler is None:
            self._respond(session, action_id, "Error", {
                "Message": f"Invalid/unknown command: {name}. Use Action: ListCommands to show available commands."})
            return "keep"
        frames, after = handler(action, action_id)
        if drop == "after":
            after()
            return "drop"
        for frame in frames:
            session.writer.write(frame)
        after()
        return "keep"

    def _login(self, session: _Session, action: dict[str, str], action_id: str | None) -> Literal["keep", "close"]:
        username = action.get("username", "")
        if username not in self.users or self.users[username] != action.get("secret"):
            self._respond(session, action_id, "Error", {"Message": "Authentication failed"})
            return "close"
        session.authenticated = True
        session.events = action.get("events", "on").lower() != "off"
        self._respond(session, action_id, "Success", {"Message": "Authentication accepted"})
        session.writer.write(_frame({"Event": "FullyBooted", "Privilege": "system,all", "Uptime": "100",
                                     "LastReload": "100", "Status": "Fully Booted"}))
        return "keep"

    def _ping(self, action: dict[str, str], action_id: str | None):
        now = time.time()
        return [_response(action_id, "Success", {"Ping": "Pong", "Timestamp": f"{now:.6f}"})], _nothing

    def _status(self, action: dict[str, str], action_id: str | None):
        wanted = action.get("channel", "")
        if wanted:
            channel = self.channels.get(wanted) or next(
                (c for c in self.channels.values() if c.uniqueid == wanted), None)
            if channel is None:
                return [_response(action_id, "Error", {"Message": "No such channel"})], _nothing
            selected = [channel]
        else:
            selected = list(self.channels.values())
        variables = [v for v in action.get("variables", "").split(",") if v]
        frames = [_response(action_id, "Success", {"EventList": "start", "Message": "Channel status will follow"})]
        for channel in selected:
            fields = {"Event": "Status", "Privilege": "Call"}
            if action_id is not None:
                fields["ActionID"] = action_id
            fields |= _channel_fields(channel) | {
                "Type": "PJSIP", "DNID": "", "TimeToHangup": "0", "BridgeID": channel.bridge_id,
                "Application": channel.application, "Data": "", "Nativeformats": "(ulaw)",
                "Readformat": "ulaw", "Readtrans": "", "Writeformat": "ulaw", "Writetrans": "",
                "Callgroup": "0", "Pickupgroup": "0", "Seconds": "12",
            }
            lines = [f"Variable: {name}={channel.get(name)}" for name in variables]
            frames.append(_frame(fields, lines))
        complete = {"Event": "StatusComplete"}
        if action_id is not None:
            complete["ActionID"] = action_id
        complete |= {"EventList": "Complete", "ListItems": str(len(selected)), "Items": str(len(selected))}
        frames.append(_frame(complete))
        return frames, _nothing

    def _redirect(self, action: dict[str, str], action_id: str | None):
        name = action.get("channel", "")
        channel = self.channels.get(name)
        if not name:
            return [_response(action_id, "Error", {"Message": "Channel not specified"})], _nothing
        if channel is None:
            return [_response(action_id, "Error", {"Message": f"Channel does not exist: {name}"})], _nothing
        if channel.state != "Up":
            return [_response(action_id, "Error", {"Message": "Redirect failed, channel not up."})], _nothing

        def execute() -> None:
            self.executed.append(("Redirect", name))
            peer = self.channels.get(channel.bridged_with)
            self._emit_channel_event("BridgeLeave", channel, {"BridgeUniqueid": channel.bridge_id})
            channel.context = action.get("context", channel.context)
            channel.exten = action.get("exten", channel.exten)
            channel.priority = int(action.get("priority", "1") or 1)
            channel.application, channel.bridged_with, channel.bridge_id = "Queue", "", ""
            if peer is not None:
                self._emit_channel_event("BridgeLeave", peer, {"BridgeUniqueid": peer.bridge_id})
                self.channels.pop(peer.name, None)
                self._emit_channel_event("Hangup", peer, {"Cause": "16", "Cause-txt": "Normal Clearing"})
            self._emit_channel_event("Newexten", channel, {"Extension": channel.exten, "Application": "NoOp",
                                                           "AppData": "transfer"})

        return [_response(action_id, "Success", {"Message": "Redirect successful"})], execute

    def _hangup(self, action: dict[str, str], action_id: str | None):
        name = action.get("channel", "")
        if name not in self.channels:
            return [_response(action_id, "Error", {"Message": "No such channel"})], _nothing
        cause = int(action.get("cause", "16") or 16)

        def execute() -> None:
            self.executed.append(("Hangup", name))
            self.hangup_channel(name, cause)

        return [_response(action_id, "Success", {"Message": "Channel Hungup"})], execute

    # ------------------------------------------------------------------ events

    def _set_var(self, channel: FakeChannel, name: str, value: str) -> None:
        channel.variables[name] = value
        self._emit_channel_event("VarSet", channel, {"Variable": name, "Value": value})

    def _emit_channel_event(self, event: str, channel: FakeChannel, extra: dict[str, str] | None = None) -> None:
        self._emit({"Event": event, "Privilege": "call,all" if event != "VarSet" else "dialplan,all"}
                   | _channel_fields(channel) | (extra or {}))

    def _emit(self, fields: dict[str, str]) -> None:
        frame = _frame(fields)
        for session in self._sessions:
            if session.authenticated and session.events:
                session.writer.write(frame)

    def _respond(self, session: _Session, action_id: str | None, response: str, fields: dict[str, str]) -> None:
        session.writer.write(_response(action_id, response, fields))


def _nothing() -> None:
    return None


def _channel_fields(channel: FakeChannel) -> dict[str, str]:
    codes = {"Down": "0", "Ring": "4", "Ringing": "5", "Up": "6"}
    return {
        "Channel": channel.name, "ChannelState": codes.get(channel.state, "6"),
        "ChannelStateDesc": channel.state, "CallerIDNum": channel.caller_num or "<unknown>",
        "CallerIDName": "<unknown>", "ConnectedLineNum": "<unknown>", "ConnectedLineName": "<unknown>",
        "Language": "pt_BR", "AccountCode": "", "Context": channel.context, "Exten": channel.exten,
        "Priority": str(channel.priority), "Uniqueid": channel.uniqueid, "Linkedid": channel.linkedid,
    }


def _response(action_id: str | None, response: str, fields: dict[str, str]) -> bytes:
    head = {"Response": response}
    if action_id is not None:
        head["ActionID"] = action_id
    return _frame(head | fields)


def _frame(fields: dict[str, str], extra_lines: list[str] | None = None) -> bytes:
    lines = [f"{key}: {value}" for key, value in fields.items()] + (extra_lines or [])
    return (EOL.join(lines) + EOL + EOL).encode()


def _cause_text(cause: int) -> str:
    return {16: "Normal Clearing", 17: "User busy", 21: "Call Rejected"}.get(cause, "Unknown")


async def _read_action(reader: asyncio.StreamReader) -> dict[str, str] | None:
    """One action frame; keys lower-cased (AMI keys are case-insensitive). None at EOF."""
    fields: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if not line:
            return None
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if not text:
            if fields:
                return fields
            continue
        key, sep, value = text.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip()
