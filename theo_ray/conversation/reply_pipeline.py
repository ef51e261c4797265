"""ReplyPipeline: turns a model request into audio on the line, for one reply.

One LLM-text generator (`model_text`: repetition guard, bracketed meta text dropped, tool
calls handed over, first-token stamp) feeds both pipelines: "streaming" (sentence pieces to
TTS, TTS chunks to the line as they come) and "sequential" (the batch baseline: the whole
reply, then the whole TTS, then play). It writes only its Reply handle and the turn's
stamps; the turn machine hears about the first audio through `on_audible`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import numpy as np

from theo_ray.conversation.llm_chain import llm_deltas
from theo_ray.conversation.model_client import ModelClient
from theo_ray.conversation.records import CallRecord
from theo_ray.conversation.reply import Reply
from theo_ray.conversation.settings import ConversationSettings
from theo_ray.conversation.stream_deadline import within_deadlines
from theo_ray.media.playback_port import MarkKind, PlaybackPort, PlayoutMark
from theo_ray.messages import GenerateRequest, SynthesizeRequest, ToolCall, TraceContext
from theo_ray.turn.meta_text import BracketFilter
from theo_ray.turn.repetition_guard import RepetitionGuard
from theo_ray.turn.sentence_splitter import SentenceSplitter

log = logging.getLogger("theo.turn")


class ReplyPipeline:
    def __init__(
        self,
        session_id: str,
        record: CallRecord,
        models: ModelClient,
        playback: PlaybackPort,
        settings: ConversationSettings,
        clock: Callable[[], float],
        trace: Callable[[], TraceContext],
        new_mark: Callable[[MarkKind], PlayoutMark],
        accept_tool: Callable[[Reply, ToolCall], None],
        on_audible: Callable[[Reply], None],
    ) -> None:
        self.session_id = session_id
        self.record = record
        self.models = models
        self.playback = playback
        self.settings = settings
        self.clock = clock
        self.trace = trace
        self.new_mark = new_mark
        self.accept_tool = accept_tool
        self.on_audible = on_audible

    async def run(self, reply: Reply, request: GenerateRequest) -> None:
        if self.settings.pipeline == "sequential":
            await self._sequential(reply, request)
        else:
            await self._streaming(reply, request)

    async def model_text(self, reply: Reply, request: GenerateRequest) -> AsyncIterator[str]:
        """The model's reply as clean text deltas (what may be spoken), for either pipeline."""
        turn = reply.turn
        guard = RepetitionGuard(self.settings.turn.repetition_guard)
        meta = BracketFilter()
        deltas = llm_deltas(self.models, reply, request, self.settings.timeouts, self.record)
        try:
            async for delta in deltas:
                if delta.text:
                    turn.stamp("llm_first_token", self.clock())
                    if guard.feed(delta.text):
                        self._stop_looping(reply, guard)
                        return  # what was not yet yielded is part of the loop: dropped
                    text = meta.feed(delta.text)
                    if text:
                        yield text
                if delta.tool_call is not None:
                    self.accept_tool(reply, delta.tool_call)
                if delta.finish_reason:
                    turn.reply_tokens = delta.completion_tokens
        finally:
            if meta.dropped or meta.open:
                log.warning("%s: reply %d: dropped bracketed text the model wrote", self.session_id, turn.index)

    def _stop_looping(self, reply: Reply, guard: RepetitionGuard) -> None:
        """Bad model output: the reply repeats itself. Stop generating; keep what was said."""
        unit, repeats = guard.loop or ("", 0)
        reply.turn.reply_loop = unit
        reply.looped = True
        log.warning("%s: reply %d stopped: the model repeated %r %d times", self.session_id, reply.turn.index, unit, repeats)
        reply.stop_generating()

    async def _streaming(self, reply: Reply, request: GenerateRequest) -> None:
        splitter = SentenceSplitter(self.settings.turn.splitter)
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        speaker = reply.speaker = asyncio.create_task(self._speak_pieces(reply, pieces))
        try:
            async for text in self.model_text(reply, request):
                for piece in splitter.feed(text):
                    reply.turn.stamp("llm_first_sentence", self.clock())
                    pieces.put_nowait(piece)
            if not reply.looped:  # a loop's tail in the splitter is part of the loop
                for piece in splitter.flush():
                    reply.turn.stamp("llm_first_sentence", self.clock())
                    pieces.put_nowait(piece)
        except BaseException:
            speaker.cancel()  # cancelled or failed: nothing more of this reply is spoken
            raise
        finally:
            pieces.put_nowait(None)
        await speaker

    async def _speak_pieces(self, reply: Reply, pieces: asyncio.Queue) -> None:
        while (piece := await pieces.get()) is not None:
            await self.speak(reply, piece)

    async def speak(self, reply: Reply, text: str, kind: MarkKind = MarkKind.REPLY) -> None:
        """Synthesise `text` and enqueue its chunks as they come, under one mark."""
        turn = reply.turn
        mark = self.new_mark(kind)
        reply.tts_stream = self.models.synthesize(
            SynthesizeRequest(text=text, request_id=f"{self.session_id}-{mark.key}", trace=self.trace())
        )
        reply.add_piece(mark, text)
        async for chunk in self._tts_chunks(reply):
            if not chunk.pcm:
                continue
            turn.stamp("tts_first_chunk", self.clock())
            self._enqueue(reply, np.frombuffer(chunk.pcm, dtype="<i2"), mark, last=False)
        _refuse_if_cut(reply)
        self.playback.enqueue(np.zeros(0, np.int16), mark, last=True)

    def _tts_chunks(self, reply: Reply):
        limits = self.settings.timeouts
        return within_deadlines(
            reply.tts_stream, limits.tts_first_chunk_s, limits.tts_chunk_gap_s, "tts_first_chunk", "tts_chunk_gap"
        )

    def _enqueue(self, reply: Reply, pcm: np.ndarray, mark: PlayoutMark, last: bool) -> None:
        _refuse_if_cut(reply)
        if not reply.audible:
            reply.audible = True
            reply.turn.stamp("first_audio_enqueued", self.clock())
            self.on_audible(reply)
        self.playback.enqueue(pcm, mark, last=last)

    async def _sequential(self, reply: Reply, request: GenerateRequest) -> None:
        turn = reply.turn
        text = "".join([t async for t in self.model_text(reply, request)]).strip()
        turn.stamp("llm_first_sentence", self.clock())
        if not text:
            return
        mark = self.new_mark(MarkKind.REPLY)
        reply.tts_stream = self.models.synthesize(
            SynthesizeRequest(text=text, request_id=f"{self.session_id}-{mark.key}", trace=self.trace())
        )
        audio = [np.frombuffer(c.pcm, dtype="<i2") async for c in self._tts_chunks(reply) if c.pcm]
        turn.stamp("tts_first_chunk", self.clock())
        reply.add_piece(mark, text)
        self._enqueue(reply, np.concatenate(audio) if audio else np.zeros(0, np.int16), mark, last=True)


def _refuse_if_cut(reply: Reply) -> None:
    """A cut reply never reaches the line again, not even a chunk that arrived as it was cut
    (Python 3.11's wait_for can return a result its cancellation raced with)."""
    if reply.cancelled:
        raise asyncio.CancelledError()
