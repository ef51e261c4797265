"""Cues: the agent's short pre-rendered sounds that are not answers — the filler when a
reply's first audio is late (`turn.fillers.delay_ms`), and the "uhum" in a pause of a long
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
        """A filler if `reply` has not been heard after the delay (cancel the task to skip it)."""
        await asyncio.sleep(self.settings.turn.fillers.delay_ms / 1000.0)
        if reply.audible or reply.cancelled or self.phrases is None:
            return
        phrase = self.phrases.pick("fillers", self.rng)
        if phrase is None:
            return
        reply.turn.stamp("filler", self.clock())
        reply.turn.filler_text = phrase.text
        self.record.fillers_played += 1
        self.playback.enqueue(phrase.samples(), self.new_mark(MarkKind.FILLER), last=True)
