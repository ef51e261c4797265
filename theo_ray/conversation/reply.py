"""Reply: the handle of one agent reply in flight (after LiveKit Agents' SpeechHandle).

It holds the reply's model streams, the pieces it enqueued (typed marks + text), the tool
calls accepted from the model, and answers the two questions the rest of the turn machine
asks about it: `interrupt()` (stop for good and say what the caller heard of it) and
`wait_for_playout()` (when has the caller heard all of it). Whoever created the reply
owns its task; the handle only cancels it.
"""

from __future__ import annotations

import asyncio

from theo_ray.conversation.heard_text import heard_text
from theo_ray.conversation.records import TurnRecord
from theo_ray.media.playback_port import PlaybackPort, PlayoutMark
from theo_ray.turn.tools import AcceptedToolCall


def cancel_stream(stream) -> None:
    if stream is not None:
        try:
            stream.cancel()  # propagates into the replica: the engine aborts
        except Exception:  # already finished
            pass


class Reply:
    def __init__(self, turn: TurnRecord, playback: PlaybackPort, utterance=None) -> None:
        self.turn = turn
        self.playback = playback
        self.utterance = utterance  # kept so a resumed utterance loses nothing
        self.task: asyncio.Task | None = None
        self.speaker: asyncio.Task | None = None  # the streaming pipeline's TTS task, beside `task`
        self.llm_stream = None
        self.tts_stream = None
        self.pieces: list[tuple[PlayoutMark, str]] = []  # in speaking order
        self.text = ""
        self.tools: list[AcceptedToolCall] = []
        self.audible = False  # its own audio (not a filler) has been enqueued
        self.cancelled = False  # stopped on purpose: its streams' errors are not failures
        self.looped = False  # the model repeated itself and was stopped (bad model output)
        self.typed = ""  # a keypad entry's text: the caller's words without speech-to-text

    def add_piece(self, mark: PlayoutMark, text: str) -> None:
        self.pieces.append((mark, text))
        self.text = (self.text + " " + text).strip()

    def stop_generating(self) -> None:
        cancel_stream(self.llm_stream)

    def cancel(self) -> None:
        """Stop the streams and the task; what was already enqueued keeps playing."""
        self.cancelled = True
        self.stop_generating()
        cancel_stream(self.tts_stream)
        for task in (self.task, self.speaker):
            if task is not None and not task.done():
                task.cancel()  # the speaker too: a piece queued before the cut must not start

    def interrupt(self) -> str:
        """The caller interrupted: nothing more is sent, the streams abort. Returns (and
        records on the turn) what the caller heard, cut with an em dash."""
        self.playback.flush()
        # Every piece's progress from the playout's record (the flush result lists only the
        # marks still queued; pieces played out before it count as heard too).
        progress = {mark.key: p for mark, _text in self.pieces if (p := self.playback.progress(mark)) is not None}
        heard, cut = heard_text([(mark.key, text) for mark, text in self.pieces], progress)
        if self.pieces and not cut and self.task is not None and not self.task.done():
            heard, cut = heard + "—", True  # the rest was never even synthesised
        self.turn.heard_text = heard
        self.turn.interrupted = True
        self.cancel()
        return heard

    async def wait_for_playout(self) -> float:
        """When the caller has heard the last sample enqueued (GAP 6: not a sleep guess)."""
        return await self.playback.drained()
