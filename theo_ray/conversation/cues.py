"""Cues: the agent's short pre-rendered sounds that are not answers — the filler when a
reply's first audio is late (`turn.fillers`: a second one on a long wait), and the "uhum" in a pause of a long
caller turn. Neither may be interrupted or interrupt anything (their own mark kinds)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from theo_ray.conversation.phrase_book import PhraseBook
from theo_ray.conversation.records import CallRecord
from theo_ray.conversation.reply import Reply
from theo_ray.conversation.settings import ConversationSettings
from theo_ray.media.playback_port import MarkKind, PlaybackPort, PlayoutMark


class Cues:
    def __init__(
        self,
        settings: ConversationSettings,
        phrases: PhraseBook | None,
        playback: PlaybackPort,
        record: CallRecord,
        rng: random.Random,
        clock: Callable[[], float],
        new_mark: Callable[[MarkKind], PlayoutMark],
    ) -> None:
        self.settings = settings
        self.phrases = phrases
        self.playback = playback
        self.record = record
        self.rng = rng
        self.clock = clock
        self.new_mark = new_mark

    def backchannel(self) -> bool:
        """Play an "uhum"; False when the phrase book has none."""
        phrase = self.phrases.pick("backchannels", self.rng) if self.phrases is not None else None
        if phrase is None:
            return False
        self.playback.enqueue(phrase.samples(), self.new_mark(MarkKind.BACKCHANNEL), last=True)
        self.record.backchannels_played += 1
        return True

    async def filler_after_delay(self, reply: Reply) -> None:
        """A filler if `reply` has not been heard after the delay, and another if it still
        has not after `repeat_after_ms` of silence (cancel the task to skip them)."""
        fillers = self.settings.turn.fillers
        await asyncio.sleep(fillers.delay_ms / 1000.0)
        said = ""
        for _ in range(fillers.max_per_reply):
            if reply.audible or reply.cancelled or self.phrases is None:
                return
            phrase = self._pick_filler(avoid=said)
            if phrase is None:
                return
            reply.turn.stamp("filler", self.clock())  # the first filler's instant
            reply.turn.filler_text = f"{reply.turn.filler_text} {phrase.text}".strip()  # every one heard
            said = phrase.text
            self.record.fillers_played += 1
            self.playback.enqueue(phrase.samples(), self.new_mark(MarkKind.FILLER), last=True)
            await self.playback.drained()
            await asyncio.sleep(fillers.repeat_after_ms / 1000.0)

    def _pick_filler(self, avoid: str):
        options = [p for p in self.phrases.fillers if p.text != avoid] or self.phrases.fillers
        return self.rng.choice(options) if options else None
