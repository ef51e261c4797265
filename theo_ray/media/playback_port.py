"""The playback port: the one narrow door from a conversation to the media plane's outbound audio.

A conversation enqueues audio under a typed `PlayoutMark`, pauses/resumes/flushes the line,
waits for it to drain, reads how much of a mark was sent and subscribes to typed events.
`RtpPlayback` implements it over anything with `RtpSession`'s playout members (the real
session, or a test line); the media layer below keeps plain string keys, so the caller
simulator and the benchmarks that enqueue raw audio are unchanged.

A mark's kind says what the audio is, and so whether a caller's interruption may cancel it
(Pipecat's data vs. system frames): a reply or a transfer notice may be interrupted; the
greeting, a filler, a backchannel, a reprompt and an emergency phrase are not barge-in targets.
"""

from __future__ import annotations

import asyncio
import enum
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Literal, Protocol

import msgspec
import numpy as np

from theo_ray.media.playout import FlushResult, MarkProgress, PlayoutEvent, PlayoutQueue

if TYPE_CHECKING:
    from theo_ray.media.rtp_session import InboundFrame, TelephoneEvent

_KNOWN_MARKS = 1024  # key -> mark kept for event decoding (a long call's marks, then the oldest go)


class MarkKind(str, enum.Enum):
    GREETING = "greet"
    REPLY = "t"
    NOTICE = "notice"
    FILLER = "filler"
    BACKCHANNEL = "bc"
    PROMPT = "prompt"  # the agent's own reprompt or goodbye (pre-rendered)
    EMERGENCY = "emergency"

    @property
    def interruptible(self) -> bool:
        return self in (MarkKind.REPLY, MarkKind.NOTICE)

    @property
    def is_reply_audio(self) -> bool:
        """The agent's answer itself (what "first audio" of a reply measures)."""
        return self in (MarkKind.REPLY, MarkKind.NOTICE)


class PlayoutMark(msgspec.Struct, frozen=True):
    kind: MarkKind
    turn: int
    seq: int

    @property
    def key(self) -> str:
        """The media layer's string for it (also what call records and logs show)."""
        return f"{self.kind.value}{self.turn}.{self.seq}"


class PlaybackEvent(msgspec.Struct, frozen=True):
    kind: Literal["mark_started", "mark_done", "flushed", "paused", "resumed", "idle"]
    at: float
    mark: PlayoutMark | None = None  # None for events about no mark, or a mark not ours


class PlaybackPort(Protocol):
    def enqueue(self, pcm: np.ndarray, mark: PlayoutMark, last: bool = False) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def flush(self) -> FlushResult: ...

    async def drained(self) -> float: ...

    def progress(self, mark: PlayoutMark) -> MarkProgress | None: ...

    def subscribe(self, callback: Callable[[PlaybackEvent], None]) -> None: ...


class CallLine(Protocol):
    """Everything a conversation uses of one call's media session (`RtpSession` has it):
    the inbound frames, the echo reference, the arrival probe, and the playout members
    `RtpPlayback` wraps."""

    playout: PlayoutQueue | None

    @property
    def ptime_ms(self) -> int: ...

    @property
    def jitter_depth_ms(self) -> float: ...

    @property
    def direction(self) -> str: ...

    def frames(self) -> AsyncIterator[InboundFrame]: ...

    def telephone_events(self) -> AsyncIterator[TelephoneEvent]: ...

    def send_dtmf(self, digits: str) -> asyncio.Future: ...

    def last_sent_pcm(self) -> np.ndarray | None: ...

    def set_arrival_probe(self, probe: Callable[[float, float], None] | None) -> None: ...

    def enqueue(self, pcm: np.ndarray, mark: str, last: bool = False) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def flush(self) -> FlushResult: ...

    async def drained(self) -> float: ...

    def mark_progress(self, mark: str) -> MarkProgress | None: ...


class RtpPlayback:
    """`PlaybackPort` over a `CallLine` (an RtpSession, or a test's line)."""

    def __init__(self, line: CallLine) -> None:
        self._line = line
        self._marks: OrderedDict[str, PlayoutMark] = OrderedDict()
        self._subscribers: list[Callable[[PlaybackEvent], None]] = []
        line.playout.add_listener(self._on_event)

    def enqueue(self, pcm: np.ndarray, mark: PlayoutMark, last: bool = False) -> None:
        key = mark.key
        if key not in self._marks:
            self._marks[key] = mark
            if len(self._marks) > _KNOWN_MARKS:
                self._marks.popitem(last=False)
        self._line.enqueue(pcm, key, last=last)

    def pause(self) -> None:
        self._line.pause()

    def resume(self) -> None:
        self._line.resume()

    def flush(self) -> FlushResult:
        return self._line.flush()

    async def drained(self) -> float:
        return await self._line.drained()

    def progress(self, mark: PlayoutMark) -> MarkProgress | None:
        return self._line.mark_progress(mark.key)

    def subscribe(self, callback: Callable[[PlaybackEvent], None]) -> None:
        self._subscribers.append(callback)

    def _on_event(self, event: PlayoutEvent) -> None:
        if not self._subscribers:
            return
        typed = PlaybackEvent(event.kind, event.at, self._marks.get(event.mark) if event.mark else None)
        for callback in self._subscribers:
            callback(typed)
