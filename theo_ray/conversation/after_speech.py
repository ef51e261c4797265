"""AfterSpeechActions: what happens once the agent's words have been heard — the model's
tool calls (accepted through the registry, run after the speech before them drained),
the transfer notice when the model asked for a transfer without a word, and emergencies
(a pre-rendered apology, then a human).

Tools are dispatched by name through one table: the built-in transfer and end-call go to
the call's CallControl; a tool declared in the config runs the handler bound to it
(`bind()`), and one with no handler is answered to the model as not executed — never
as a made-up success — and counted on the call record.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec

from theo_ray.conversation.call_control import CallControl
from theo_ray.conversation.phrase_book import PhraseBook
from theo_ray.conversation.records import CallRecord, ToolExecution
from theo_ray.conversation.reply import Reply
from theo_ray.conversation.settings import ConversationSettings
from theo_ray.media.playback_port import MarkKind, PlaybackPort, PlayoutMark
from theo_ray.messages import ToolCall
from theo_ray.turn.keypad import KeypadShortcut
from theo_ray.turn.memory import ConversationMemory
from theo_ray.turn.spoken_notices import transfer_notice
from theo_ray.turn.tools import END_CALL, TRANSFER_CALL, AcceptedToolCall, ToolRegistry

log = logging.getLogger("theo.turn")


class ToolResult(msgspec.Struct, frozen=True):
    ok: bool
    content: str  # handed to the model as the tool's result
    detail: str = ""  # for the call record


ToolHandler = Callable[[ToolCall], Awaitable[ToolResult]]


class AfterSpeechActions:
    def __init__(
        self,
        settings: ConversationSettings,
        tools: ToolRegistry,
        memory: ConversationMemory,
        control: CallControl,
        record: CallRecord,
        playback: PlaybackPort,
        phrases: PhraseBook | None,
        clock: Callable[[], float],
        new_mark: Callable[[MarkKind], PlayoutMark],
    ) -> None:
        self.settings = settings
        self.tools = tools
        self.memory = memory
        self.control = control
        self.record = record
        self.playback = playback
        self.phrases = phrases
        self.clock = clock
        self.new_mark = new_mark
        self._handlers: dict[str, ToolHandler] = {TRANSFER_CALL: self._transfer, END_CALL: self._end_call}

    def bind(self, name: str, handler: ToolHandler) -> None:
        """Run `handler` for the declared tool `name` (the config declares it to the model)."""
        if self.tools.get(name) is None:
            raise KeyError(f"no tool named {name!r} is declared")
        self._handlers[name] = handler

    # ------------------------------------------------------------------ while the reply streams

    def accept(self, reply: Reply, call: ToolCall) -> None:
        """A tool call from the model: kept on the reply if valid, else answered with the error."""
        checked = self.tools.check(call)
        if isinstance(checked, AcceptedToolCall):
            reply.tools.append(checked)
        else:
            self.record.errors.append(f"tool call rejected: {checked.error}")
            self.memory.add_tool_result(call.id, f"erro: {checked.error}")

    def notice_for(self, reply: Reply) -> str | None:
        """The words to say before a transfer the model asked for without saying anything."""
        transfer = next((t for t in reply.tools if t.call.name == TRANSFER_CALL), None)
        if transfer is None or reply.text:
            return None
        args = transfer.call.arguments
        return transfer_notice(str(args.get("destination", "")), str(args.get("reason", "")).strip())

    # ------------------------------------------------------------------ once the speech drained

    async def run_tools(self, reply: Reply) -> None:
        for accepted in reply.tools:
            call = accepted.call
            handler = self._handlers.get(call.name, self._unbound)
            result = await handler(call)
            if call.name not in (TRANSFER_CALL, END_CALL):
                self.memory.add_tool_result(call.id, result.content)
            reply.turn.tools.append(
                ToolExecution(call=call, drained_at=reply.turn.drained_at, executed_at=self.clock(),
                              ok=result.ok, detail=result.detail)
            )

    async def _transfer(self, call: ToolCall) -> ToolResult:
        destination = str(call.arguments.get("destination", ""))
        reason = str(call.arguments.get("reason", ""))
        outcome = await self.control.transfer(destination, reason)
        if outcome.ok:
            self.record.transferred_to, self.record.transfer_reason = destination, reason
        else:
            await self.emergency("transfer_failed", transfer=False)
        return ToolResult(outcome.ok, outcome.detail, outcome.detail)

    async def _end_call(self, call: ToolCall) -> ToolResult:
        outcome = await self.control.hangup(str(call.arguments.get("reason", "")))
        return ToolResult(outcome.ok, outcome.detail, outcome.detail)

    async def _unbound(self, call: ToolCall) -> ToolResult:
        detail = f"tool {call.name!r} has no handler bound: not executed"
        log.warning("%s", detail)
        self.record.errors.append(detail)
        return ToolResult(False, f"error: {detail}", detail)

    # ------------------------------------------------------------------ emergencies

    def say(self, key: str) -> str:
        """Queue the pre-rendered phrase `key` (a reprompt, a goodbye); its text, "" if none."""
        phrase = self.phrases.emergency.get(key) if self.phrases else None
        if phrase is None:
            return ""
        self.playback.enqueue(phrase.samples(), self.new_mark(MarkKind.PROMPT), last=True)
        return phrase.text

    async def close_call(self, key: str, reason: str, transfer: bool = False) -> None:
        """End the call politely: once what is playing has been heard, the phrase `key`, then
        the hang-up (or the transfer to a human)."""
        await self.playback.drained()
        if self.say(key):
            await self.playback.drained()
        self.record.end_reason = self.record.end_reason or reason
        if transfer:
            destination = self._human_destination()
            outcome = await self.control.transfer(destination, reason)
            if outcome.ok:
                self.record.transferred_to, self.record.transfer_reason = destination, reason
        else:
            await self.control.hangup(reason)

    def _human_destination(self) -> str:
        destinations = list(self.settings.turn.tools.transfer_destinations)
        return destinations[0] if destinations else "atendimento"

    async def keypad_shortcut(self, shortcut: KeypadShortcut) -> None:
        """A shortcut key: to a human (with a short notice), or a goodbye and the hang-up."""
        self.record.keypad_shortcuts.append(shortcut.key)
        if shortcut.action == "transfer":
            await self.close_call("keypad_transfer", f"teclado: {shortcut.key}", transfer=True)
        else:
            await self.close_call("goodbye", f"teclado: {shortcut.key}")

    async def ask_to_repeat(self, key: str = "bad_line") -> None:
        """The caller's words were lost (the transcription failed, or is too unsure to be
        answered): "could you repeat?"."""
        if self.say(key):
            await self.playback.drained()

    async def emergency(self, key: str, transfer: bool = True) -> None:
        """Something failed: say so with a pre-rendered phrase, then hand over to a human."""
        phrase = self.phrases.emergency.get(key) if self.phrases else None
        if phrase is not None:
            self.playback.flush()
            self.playback.enqueue(phrase.samples(), self.new_mark(MarkKind.EMERGENCY), last=True)
            await self.playback.drained()
        if transfer:
            destination = self._human_destination()
            outcome = await self.control.transfer(destination, f"falha técnica: {key}")
            if outcome.ok:
                self.record.transferred_to = destination
                self.record.transfer_reason = f"technical: {key}"
