"""TurnLoop: one call's conversation — LISTENING -> THINKING -> SPEAKING -> (barge-in) LISTENING.

Owns, for its call: VAD + echo gate + endpointer over the inbound 20 ms frames, the STT
partials and the final transcript, the streaming reply (LLM deltas -> sentence pieces ->
TTS chunks -> playout queue), fillers while thinking (comfort noise is the media layer's idle fill), barge-in (pause at
once, then flush + abort or resume), memory, and tools that run only after the speech
before them has drained. Everything is asyncio on the CallActor's loop; CPU work (Smart
Turn) runs in an executor and model work in the deployments.

Why one module of ~870 lines: it is the one writer of the call's conversation state. What
can stand alone already does (echo gate, endpointer, splitter, meta-text filter, memory,
phrase book, heard text, partials); what stays is the state machine's transitions, which
are only right read together.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Callable
from typing import Literal

import msgspec
import numpy as np

from theo_ray.conversation.call_control import CallControl
from theo_ray.conversation.echo_gate import EchoGate
from theo_ray.conversation.line_level import LineLevel
from theo_ray.conversation.heard_text import heard_text
from theo_ray.conversation.model_client import ModelClient
from theo_ray.conversation.partials import StablePartial
from theo_ray.conversation.phrase_book import PhraseBook
from theo_ray.conversation.records import BargeInRecord, CallRecord, ToolExecution, TurnRecord
from theo_ray.conversation.settings import ConversationSettings
from theo_ray.conversation.turn_spans import TurnTracer
from theo_ray.media.playout import PlayoutEvent
from theo_ray.media.rtp_session import InboundFrame, RtpSession
from theo_ray.messages import GenerateRequest, SynthesizeRequest, ToolCall
from theo_ray.turn.backchannel import BackchannelDetector
from theo_ray.turn.endpointer import SmartEndpointer
from theo_ray.turn.memory import ConversationMemory
from theo_ray.turn.prompt import PromptBuilder
from theo_ray.turn.meta_text import BracketFilter
from theo_ray.turn.repetition_guard import RepetitionGuard
from theo_ray.turn.sentence_splitter import SentenceSplitter
from theo_ray.turn.tools import AcceptedToolCall, ToolRegistry
from theo_ray.turn.turn_model import SmartTurn
from theo_ray.turn.vad import SileroVad

log = logging.getLogger("theo.turn")
State = Literal["listening", "thinking", "speaking", "ended"]
RATE = 16000


class _Utterance:
    """The caller's current utterance: audio since (pre-roll before) VAD start."""

    def __init__(self, preroll: list[np.ndarray], started_at: float) -> None:
        self.frames: list[np.ndarray] = list(preroll)
        self.started_at = started_at
        self.speech_end_at = 0.0
        self.partial = StablePartial()
        self.samples_at_last_partial = 0
        self.partial_task: asyncio.Task | None = None
        self.final_task: asyncio.Task | None = None
        self.turn_prob_task: asyncio.Task | None = None
        self.end_check: asyncio.TimerHandle | None = None  # re-decide when the wait is over

    def audio(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, np.int16)

    @property
    def samples(self) -> int:
        return sum(len(f) for f in self.frames)

    def cancel_tasks(self) -> None:
        for task in (self.partial_task, self.final_task, self.turn_prob_task):
            if task and not task.done():
                task.cancel()
        if self.end_check is not None:
            self.end_check.cancel()


class _Reply:
    """One agent reply in flight: its streams, pieces spoken and pending tools."""

    def __init__(self, turn: TurnRecord) -> None:
        self.turn = turn
        self.task: asyncio.Task | None = None
        self.llm_stream = None
        self.tts_stream = None
        self.pieces: list[tuple[str, str]] = []  # (mark, text) in speaking order
        self.text = ""
        self.tools: list[AcceptedToolCall] = []
        self.real_audio_started = False
        self.cancelled = False
        self.utterance: _Utterance | None = None  # kept so a resumed utterance loses nothing

    def cancel_streams(self) -> None:
        self.cancel_llm_stream()
        _cancel(self.tts_stream)

    def cancel_llm_stream(self) -> None:
        _cancel(self.llm_stream)


def _cancel(stream) -> None:
    if stream is not None:
        try:
            stream.cancel()  # propagates into the replica: the engine aborts
        except Exception:  # already finished
            pass


class TurnLoop:
    def __init__(
        self,
        session_id: str,
        rtp: RtpSession,
        models: ModelClient,
        settings: ConversationSettings,
        control: CallControl,
        phrases: PhraseBook | None = None,
        smart_turn: SmartTurn | None = None,
        vad: SileroVad | None = None,
        memory: ConversationMemory | None = None,
        tracer: TurnTracer | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.session_id = session_id
        self.rtp = rtp
        self.models = models
        self.settings = settings
        self.control = control
        self.phrases = phrases
        self.clock = clock
        self.rng = rng or random.Random()
        ts = settings.turn
        self.vad = vad or SileroVad(ts.vad)
        self.smart_turn = smart_turn
        self.endpointer = SmartEndpointer(ts.endpointing)
        self.backchannel = BackchannelDetector(ts.backchannel)
        self.memory = memory or ConversationMemory(ts.memory)
        self.tools = ToolRegistry(ts.tools)
        self.system_prompt = PromptBuilder(ts.prompt).build(ts.tools.transfer_destinations)
        self.echo_gate = EchoGate(settings.echo_gate, rtp.settings.ptime_ms)
        self.tracer = tracer or TurnTracer(session_id)
        self.record = CallRecord(session_id=session_id, started_at=clock(), trace_id=self.tracer.trace_id)
        self.state: State = "listening"
        self._preroll: collections.deque[np.ndarray] = collections.deque(
            maxlen=max(1, settings.preroll_ms // rtp.settings.ptime_ms)
        )
        self._utterance: _Utterance | None = None
        self._reply: _Reply | None = None
        self._barge: BargeInRecord | None = None
        self._barge_utterance_pending = False
        self._paused_at: float | None = None
        self._carry_text = ""  # caller text of a turn whose reply was cancelled by more speech
        self._turns = 0
        self._marks = 0
        self._tasks: list[asyncio.Task] = []
        self._done = asyncio.Event()
        self._last_audio_sent_at = 0.0
        self._speech_ms_in_turn = 0.0
        self._backchannel_due = False
        rtp.playout.add_listener(self._on_playout)
        barge = settings.barge_in
        self.line_level = LineLevel(barge.energy_pause_rms, barge.energy_pause_rise_db)
        rtp.set_arrival_probe(self._on_packet_energy)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, greet: bool = True) -> None:
        """Start the loop; returns at once (the work runs in tasks until stop())."""
        self._tasks.append(asyncio.create_task(self._inbound(), name=f"inbound-{self.session_id}"))
        if greet:
            self._tasks.append(asyncio.create_task(self._greet(), name=f"greet-{self.session_id}"))

    async def stop(self, reason: str) -> CallRecord:
        if self.state == "ended":
            return self.record
        self.state = "ended"
        self.record.end_reason = self.record.end_reason or reason
        self.record.ended_at = self.clock()
        if self._reply:
            # Its streams fail with "cancelled" from here on: that is the hang-up, not an error.
            self._reply.cancelled = True
            self._reply.turn.agent_text = self._reply.text
            self.record.turns.append(self._reply.turn)  # the reply the hang-up cut short
            self._reply.cancel_streams()
            if self._reply.task:
                self._reply.task.cancel()
        if self._utterance:
            self._utterance.cancel_tasks()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._reply and self._reply.task:
            await asyncio.gather(self._reply.task, return_exceptions=True)
        self.tracer.end_call(self.record)
        self._done.set()
        return self.record

    def current_turn(self) -> TurnRecord | None:
        return self._reply.turn if self._reply is not None else None

    async def wait_ended(self) -> None:
        await self._done.wait()

    # ------------------------------------------------------------------ playout

    def _on_playout(self, event: PlayoutEvent) -> None:
        if event.kind == "mark_started" and self._reply and not event.mark.startswith("filler"):
            turn = self._reply.turn
            if not turn.first_rtp_at and event.mark.startswith("t"):
                turn.first_rtp_at = event.at
        if event.kind in ("mark_started", "mark_done"):
            self._last_audio_sent_at = event.at

    def _agent_audio_active(self) -> bool:
        """The agent is talking: a reply whose audio started and has not finished, gaps
        included (TTS may run dry between two pieces, and a caller may talk into that gap:
        measured, the barge-in then waited for the agent's next syllable), or other agent
        audio (greeting, filler) sent within the last 100 ms, or a pause in effect."""
        reply = self._reply
        if reply is not None and reply.real_audio_started and self.state == "speaking":
            return True
        return (self.clock() - self._last_audio_sent_at) < 0.1 or self._paused_at is not None

    def _next_mark(self, prefix: str) -> str:
        self._marks += 1
        return f"{prefix}{self._turns}.{self._marks}"

    # ------------------------------------------------------------------ inbound frames

    async def _inbound(self) -> None:
        try:
            async for frame in self.rtp.frames():
                if self.state == "ended":
                    return
                self._on_frame(frame)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never let the call die silently: log, then fall back
            log.exception("inbound loop failed")
            self.record.errors.append(f"inbound: {type(exc).__name__}: {exc}")
            await self._emergency("technical_problem")

    def _on_frame(self, frame: InboundFrame) -> None:
        pcm = frame.pcm
        self.echo_gate.on_reference(self._reference_for(frame))
        # The gate judges every frame: the echo tail outlives the agent's last packet.
        echo = self.echo_gate.is_echo_only(pcm)
        speaking = self._agent_audio_active()
        vad_input = np.zeros_like(pcm) if echo else pcm
        events = self.vad.process(vad_input)
        if self._utterance is not None:
            self._utterance.frames.append(pcm)
        else:
            self._preroll.append(pcm)
        # Barge-in fast path: a loud non-echo frame or one likely-speech VAD window pauses
        # playout at once (fade over one packet; reversible if nothing confirms it).
        if speaking and self._paused_at is None and self._reply is not None and self._reply.real_audio_started:
            barge = self.settings.barge_in
            loud = (
                not echo
                and barge.energy_pause_rms > 0
                and float(np.sqrt(np.mean(pcm.astype(np.float32) ** 2))) > self.line_level.pause_threshold
            )
            if loud or self.vad.probability >= barge.pause_probability:
                self.rtp.pause()
                self._paused_at = self.clock()
        for event in events:
            if event.kind == "speech_start":
                self._on_speech_start(frame)
            else:
                self._on_speech_end(frame)
        self._after_frame(frame)

    def _on_packet_energy(self, rms: float, arrival_at: float) -> None:
        """Barge-in fast path at packet arrival, a jitter-buffer depth before the frame path:
        a packet louder than the line's floor + `energy_pause_rise_db` (and at least
        `energy_pause_rms`) that no echo of ours can explain pauses
        playout (fade over one packet). Reversible like every pause: no VAD speech start
        within `unconfirmed_resume_ms` and playout resumes where it stopped."""
        barge = self.settings.barge_in
        threshold = self.line_level.pause_threshold
        self.line_level.update(rms)
        if (
            barge.energy_pause_rms <= 0
            or rms <= threshold
            or self._paused_at is not None
            or self._reply is None
            or not self._reply.real_audio_started
            or self.state == "ended"
            or not self._agent_audio_active()
            or self.echo_gate.could_be_echo(rms, lead_ms=self.rtp.jitter_depth_ms)
        ):
            return
        self.rtp.pause()
        self._paused_at = self.clock()
        self.record.early_pauses += 1

    def _reference_for(self, frame: InboundFrame) -> np.ndarray | None:
        # What the playout sent in this tick (the same tick delivered this frame).
        return self.rtp.last_sent_pcm()

    def _on_speech_start(self, frame: InboundFrame) -> None:
        onset = frame.at - self.settings.turn.vad.min_speech_ms / 1000.0
        if self._agent_audio_active() and self._reply is not None:
            if self._paused_at is None:
                self.rtp.pause()
                self._paused_at = self.clock()
            self._barge = BargeInRecord(onset_at=onset, paused_at=self._paused_at)
            self.tracer.barge_in_started(self._barge)
        elif self.state == "thinking" and self._reply is not None and not self._reply.real_audio_started:
            # The caller went on talking before we answered (a pause mid-sentence): drop the
            # reply and continue the same utterance, audio included, as one turn.
            reply = self._reply
            self._cancel_reply("caller continued", record_turn=False)
            if reply.utterance is not None and self._utterance is None:
                self._utterance = reply.utterance
                self._utterance.frames.extend(self._preroll)
                self._preroll.clear()
                self._turns -= 1
        if self._utterance is None:
            self._utterance = _Utterance(list(self._preroll), onset)
            self._preroll.clear()
        else:
            # Speech resumed during the endpointing wait: same turn, drop the speculative work.
            if self._utterance.final_task:
                self._utterance.final_task.cancel()
                self._utterance.final_task = None
            if self._utterance.turn_prob_task:
                self._utterance.turn_prob_task.cancel()
                self._utterance.turn_prob_task = None
            self._utterance.speech_end_at = 0.0

    def _speech_end_at(self, fed_at: float) -> float:
        """Clock time the caller stopped talking; `fed_at` is when the newest audio fed to the
        VAD was handed out (its end)."""
        vad = self.settings.turn.vad
        end_ms = self.vad.energy_speech_end_ms(self.line_level.above_floor(vad.end_energy_rms), vad.end_lookback_ms)
        return fed_at - (self.vad.fed_ms - end_ms) / 1000.0

    def _on_speech_end(self, frame: InboundFrame) -> None:
        utt = self._utterance
        if utt is None:
            return
        utt.speech_end_at = self._speech_end_at(frame.at)
        self._speech_ms_in_turn += self.vad.speech_ms
        audio = utt.audio()
        if self._barge is not None:
            # Short burst over the agent: transcribe it and decide interrupt vs. resume.
            utt.final_task = asyncio.create_task(self._transcribe(audio))
            self._barge_utterance_pending = True
            return
        if self.settings.pipeline == "sequential":
            return  # the batch baseline transcribes once the turn has ended (_final_text)
        # Speculative final STT and turn-model probability while the endpointer waits; a
        # partial still in flight would only queue in front of it.
        if utt.partial_task is not None and not utt.partial_task.done():
            utt.partial_task.cancel()
        utt.final_task = asyncio.create_task(self._transcribe(audio))
        utt.final_task.add_done_callback(lambda _t: self._recheck_end_of_turn(utt))
        if self.smart_turn is not None:
            utt.turn_prob_task = asyncio.create_task(self.smart_turn.predict_async(audio[-8 * RATE :]))
            utt.turn_prob_task.add_done_callback(lambda _t: self._recheck_end_of_turn(utt))

    def _after_frame(self, frame: InboundFrame) -> None:
        now = self.clock()
        # An unconfirmed pause (a click, a breath) resumes the agent.
        if (
            self._paused_at is not None
            and self._barge is None
            and now - self._paused_at > self.settings.barge_in.unconfirmed_resume_ms / 1000.0
        ):
            self.rtp.resume()
            self._paused_at = None
        utt = self._utterance
        if utt is None:
            return
        if self._barge is not None:
            self._handle_barge(utt, now)
            return
        if self.vad.speaking:
            self._maybe_partial(utt)
            return
        if not utt.speech_end_at:
            return
        self._maybe_backchannel(utt)
        self._maybe_end_turn(utt, now)

    def _maybe_partial(self, utt: _Utterance) -> None:
        if self.settings.pipeline == "sequential":
            return  # the batch baseline has no streaming STT
        interval = self.settings.partial_interval_ms * RATE // 1000
        if utt.samples - utt.samples_at_last_partial < interval:
            return
        if self.vad.silence_ms > 0:
            # The caller is pausing, maybe finishing: a partial started now would still be
            # decoding when the speculative final is wanted (one STT lane on CPU).
            return
        if (utt.partial_task is not None and not utt.partial_task.done()) or (
            utt.final_task is not None and not utt.final_task.done()
        ):
            return  # one STT request in flight per call: partials never delay the final
        utt.samples_at_last_partial = utt.samples
        audio = utt.audio()

        async def partial() -> None:
            text = await self._transcribe(audio)
            utt.partial.update(text)

        utt.partial_task = asyncio.create_task(partial())

    def _maybe_backchannel(self, utt: _Utterance) -> None:
        s = self.settings
        if (
            not s.backchannel_after_speech_ms
            or self.phrases is None
            or self._speech_ms_in_turn < s.backchannel_after_speech_ms
            or self.vad.silence_ms < s.backchannel_pause_ms
            or self._backchannel_due
        ):
            return
        phrase = self.phrases.pick("backchannels", self.rng)
        if phrase is not None:
            self._backchannel_due = True  # one per long turn
            self.rtp.enqueue(phrase.samples(), self._next_mark("bc"), last=True)
            self.record.backchannels_played += 1

    def _maybe_end_turn(self, utt: _Utterance, now: float) -> None:
        silence_ms = (now - utt.speech_end_at) * 1000.0
        if self.settings.pipeline == "sequential":
            self._end_turn_on_silence(utt, now, silence_ms)
            return
        text = utt.partial.text
        final_pending = utt.final_task is not None and not utt.final_task.done()
        if final_pending and silence_ms < self.settings.turn.endpointing.max_silence_ms:
            # The speculative final covers the whole utterance; the partial is older and may
            # end before the last words ("Meu CPF é" without the digits that make the
            # dictation rule wait). The reply needs the final anyway, so deciding on it costs
            # nothing: its arrival re-decides at once (_recheck_end_of_turn).
            return
        final_ready = utt.final_task is not None and utt.final_task.done() and not utt.final_task.cancelled()
        if final_ready and utt.final_task.exception() is None:
            text = utt.final_task.result() or text
        prob = None
        if utt.turn_prob_task is not None and utt.turn_prob_task.done() and not utt.turn_prob_task.cancelled():
            if utt.turn_prob_task.exception() is None:
                prob = utt.turn_prob_task.result().probability
        if not text and silence_ms < self.settings.turn.endpointing.max_silence_ms:
            # The linguistic rules need words (is the caller dictating digits?): a final that
            # heard nothing (noise) or failed is not guessed at; max_silence ends the turn.
            return
        decision = self.endpointer.decide((self._carry_text + " " + text).strip(), silence_ms, prob)
        if not decision.end_of_turn:
            # Decide again the moment this rule's wait is over, not at the next frame (the
            # transcript or the turn model arriving also re-decides: _recheck_end_of_turn).
            self._decide_again_in(utt, decision.wait_ms - silence_ms)
            return
        log.info("end of turn %d: %s", self._turns + 1, msgspec.json.encode(decision).decode())
        self._end_turn(utt, now, decision.rule, decision.reason)

    def _end_turn_on_silence(self, utt: _Utterance, now: float, silence_ms: float) -> None:
        """The batch baseline's endpointing: VAD silence of `endpointing.base_silence_ms`, no
        transcript and no turn model (it has neither before the turn ends)."""
        wait_ms = self.settings.turn.endpointing.base_silence_ms
        if silence_ms < wait_ms:
            self._decide_again_in(utt, wait_ms - silence_ms)
            return
        self._end_turn(utt, now, "vad_silence", f"sequential baseline: {wait_ms} ms of VAD silence")

    def _decide_again_in(self, utt: _Utterance, delay_ms: float) -> None:
        if utt.end_check is not None:
            utt.end_check.cancel()
        utt.end_check = asyncio.get_running_loop().call_later(
            max(0.0, delay_ms / 1000.0), self._recheck_end_of_turn, utt
        )

    def _end_turn(self, utt: _Utterance, now: float, rule: str, reason: str) -> None:
        self._utterance = None
        self._turns += 1
        turn = TurnRecord(
            index=self._turns, speech_end_at=utt.speech_end_at, end_of_turn_at=now,
            endpoint_rule=rule, endpoint_reason=reason,
        )
        self._start_reply(turn, utt)

    def _recheck_end_of_turn(self, utt: _Utterance) -> None:
        """Endpointing between frames: the speculative transcript or the turn model is in, or
        the silence a rule asked for has passed."""
        if (
            self._utterance is not utt
            or self._barge is not None
            or self.vad.speaking
            or not utt.speech_end_at
            or self.state == "ended"
        ):
            return
        self._maybe_end_turn(utt, self.clock())

    def _handle_barge(self, utt: _Utterance, now: float) -> None:
        barge = self._barge
        assert barge is not None
        if self.vad.speaking:
            verdict = self.backchannel.early_verdict(self.vad.speech_ms)
            if verdict.kind == "interruption":
                self._interrupt(barge, now, "")
            return
        task = utt.final_task
        if (
            self._paused_at is not None
            and task is not None
            and not task.done()
            and self.vad.speech_ms <= self.settings.turn.backchannel.short_burst_ms
        ):
            # A short burst is almost always "uhum"/a cough: let the agent go on now instead
            # of holding the line silent for the STT; a stop word in the transcript still
            # interrupts when it arrives.
            self.rtp.resume()
            self._paused_at = None
        if not self._barge_utterance_pending or task is None or not task.done():
            return
        self._barge_utterance_pending = False
        text = "" if task.cancelled() or task.exception() else task.result()
        verdict = self.backchannel.classify(text, self.vad.speech_ms)
        barge.caller_text = text
        if verdict.kind in ("backchannel", "noise"):
            barge.verdict, barge.decided_at = verdict.kind, now
            self.record.barge_ins.append(barge)
            self.tracer.barge_in_ended(barge)
            self._barge = None
            self._utterance = None
            self._paused_at = None
            self.rtp.resume()  # continue exactly where it paused
            return
        self._interrupt(barge, now, text)

    def _interrupt(self, barge: BargeInRecord, now: float, text: str) -> None:
        """Real interruption: stop for good, abort the streams, remember what was heard."""
        reply = self._reply
        self.rtp.flush()
        self._paused_at = None
        barge.verdict, barge.decided_at = "interruption", now
        if reply is not None:
            # Every piece's progress from the playout's record (the flush result lists only
            # the marks still queued; pieces played out before it count as heard too).
            progress = {mark: p for mark, _text in reply.pieces if (p := self.rtp.mark_progress(mark)) is not None}
            heard, cut = heard_text(reply.pieces, progress)
            if reply.pieces and not cut and not reply.task.done():
                heard, cut = heard + "—", True  # the rest was never even synthesised
            barge.heard = heard
            reply.turn.heard_text = heard
            reply.turn.interrupted = True
            self.memory.add_agent(reply.text, heard=heard)
            self._cancel_reply("barge-in", record_memory=False)
        self.record.barge_ins.append(barge)
        self.tracer.barge_in_ended(barge)
        self._barge = None
        # The caller's words so far stay as the start of their new turn.
        if self._utterance is not None:
            self._utterance.final_task = None
            if not self.vad.speaking:
                self._on_speech_end_after_barge()

    def _on_speech_end_after_barge(self) -> None:
        utt = self._utterance
        if utt is None:
            return
        utt.speech_end_at = self._speech_end_at(self.clock())
        audio = utt.audio()
        utt.final_task = asyncio.create_task(self._transcribe(audio))

    async def _transcribe(self, audio: np.ndarray) -> str:
        try:
            segments = await asyncio.wait_for(
                self.models.transcribe(audio, prompt="", trace=self.tracer.context()), self.settings.model_timeout_s
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.record.errors.append(f"stt: {type(exc).__name__}: {exc}")
            return ""
        # Whisper hallucinates on near-silence: drop segments it itself thinks are not speech.
        return " ".join(s.text for s in segments if s.no_speech_prob < 0.8).strip()

    # ------------------------------------------------------------------ replies

    def _start_reply(self, turn: TurnRecord, utt: _Utterance) -> None:
        reply = _Reply(turn)
        reply.utterance = utt
        self._reply = reply
        self.state = "thinking"
        self._speech_ms_in_turn = 0.0
        self._backchannel_due = False
        reply.task = asyncio.create_task(self._respond(reply, utt), name=f"reply-{turn.index}")

    def _cancel_reply(self, why: str, record_memory: bool = True, record_turn: bool = True) -> None:
        reply = self._reply
        if reply is None:
            return
        reply.cancelled = True
        reply.cancel_streams()
        if reply.task and not reply.task.done():
            reply.task.cancel()
        if record_memory and reply.text:
            self.memory.add_agent(reply.text, heard="")
        reply.turn.agent_text = reply.text
        if record_turn:
            self.record.turns.append(reply.turn)
        self._reply = None
        self.state = "listening"
        log.info("reply %d cancelled: %s", reply.turn.index, why)

    async def _final_text(self, utt: _Utterance) -> str:
        # The speculative final (started at VAD speech end) stands unless speech resumed since,
        # which cancels it (_on_speech_start). The frames added since are the endpointing
        # silence: measured, redoing the transcription for them cost a whole STT pass per turn.
        # The sequential baseline never started one: it transcribes the whole utterance once the
        # turn has ended, as a batch pipeline does.
        if utt.final_task is None or utt.final_task.cancelled():
            utt.final_task = asyncio.create_task(self._transcribe(utt.audio()))
        started = self.clock()
        text = await utt.final_task
        return text, started

    async def _respond(self, reply: _Reply, utt: _Utterance) -> None:
        turn = reply.turn
        try:
            filler = asyncio.create_task(self._filler_after_delay(reply))
            text, waited_from = await self._final_text(utt)
            turn.stt_final_at = self.clock()
            turn.stt_ms = (turn.stt_final_at - waited_from) * 1000.0
            text = (self._carry_text + " " + text).strip()
            self._carry_text = ""
            turn.caller_text = text
            if not text:
                # Noise that looked like speech: nothing to answer.
                filler.cancel()
                self._finish_reply(reply)
                return
            self.memory.add_caller(text)
            if self.settings.pipeline == "sequential":
                filler.cancel()
                await self._sequential_reply(reply)
            else:
                await self._stream_reply(reply)
            filler.cancel()
            await self._say_transfer_notice_if_needed(reply)
            turn.drained_at = await self.rtp.drained()
            self.memory.add_agent(reply.text, tool_calls=[t.call for t in reply.tools])
            self._finish_reply(reply)
            await self._run_after_speech_tools(reply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if reply.cancelled:
                return  # its streams were cancelled on purpose (barge-in, caller went on)
            log.exception("reply failed")
            turn.error = f"{type(exc).__name__}: {exc}"
            self.record.errors.append(f"reply {turn.index}: {turn.error}")
            self._finish_reply(reply)
            await self._emergency("technical_problem")
        finally:
            self.tracer.turn_done(turn)
            if self.memory.needs_summary:
                asyncio.create_task(self.memory.summarise())

    def _finish_reply(self, reply: _Reply) -> None:
        reply.turn.agent_text = reply.text
        if self._reply is reply:
            self._reply = None
            self.record.turns.append(reply.turn)
            if self.state != "ended":
                self.state = "listening"

    async def _stream_reply(self, reply: _Reply) -> None:
        turn = reply.turn
        request = self._generate_request(turn)
        splitter = SentenceSplitter(self.settings.turn.splitter)
        guard = RepetitionGuard(self.settings.turn.repetition_guard)
        meta = BracketFilter()
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        speaker = asyncio.create_task(self._speak_pieces(reply, pieces))
        try:
            reply.llm_stream = self.models.generate(request)
            async for delta in reply.llm_stream:
                if delta.text:
                    if not turn.llm_first_token_at:
                        turn.llm_first_token_at = self.clock()
                    if guard.feed(delta.text):
                        self._stop_looping_reply(reply, guard)
                        break  # what the splitter still holds is part of the loop: dropped
                    for piece in splitter.feed(meta.feed(delta.text)):
                        if not turn.llm_first_sentence_at:
                            turn.llm_first_sentence_at = self.clock()
                        pieces.put_nowait(piece)
                if delta.tool_call is not None:
                    self._accept_tool(reply, delta.tool_call)
                if delta.finish_reason:
                    turn.reply_tokens = delta.completion_tokens
            else:
                for piece in splitter.flush():
                    if not turn.llm_first_sentence_at:
                        turn.llm_first_sentence_at = self.clock()
                    pieces.put_nowait(piece)
        finally:
            pieces.put_nowait(None)
            if meta.dropped or meta.open:
                log.warning("%s: reply %d: dropped bracketed text the model wrote", self.session_id, turn.index)
        await speaker

    def _stop_looping_reply(self, reply: _Reply, guard: RepetitionGuard) -> None:
        """Bad model output: the reply repeats itself. Stop generating; keep what was said."""
        unit, repeats = guard.loop or ("", 0)
        reply.turn.reply_loop = unit
        log.warning("%s: reply %d stopped: the model repeated %r %d times", self.session_id, reply.turn.index, unit, repeats)
        reply.cancel_llm_stream()

    async def _sequential_reply(self, reply: _Reply) -> None:
        """The batch baseline: the whole LLM reply, then the whole TTS, then play."""
        turn = reply.turn
        text = ""
        guard = RepetitionGuard(self.settings.turn.repetition_guard)
        meta = BracketFilter()
        reply.llm_stream = self.models.generate(self._generate_request(turn))
        async for delta in reply.llm_stream:
            if delta.text:
                if not turn.llm_first_token_at:
                    turn.llm_first_token_at = self.clock()
                if guard.feed(delta.text):
                    self._stop_looping_reply(reply, guard)  # the same rule as the streaming loop
                    break
                text += meta.feed(delta.text)
            if delta.tool_call is not None:
                self._accept_tool(reply, delta.tool_call)
            if delta.finish_reason:
                turn.reply_tokens = delta.completion_tokens
        turn.llm_first_sentence_at = self.clock()
        if not text.strip():
            return
        mark = self._next_mark("t")
        reply.tts_stream = self.models.synthesize(
            SynthesizeRequest(text=text.strip(), request_id=f"{self.session_id}-{mark}", trace=self.tracer.context())
        )
        audio = [np.frombuffer(c.pcm, dtype="<i2") async for c in reply.tts_stream if c.pcm]
        turn.tts_first_chunk_at = self.clock()
        reply.pieces.append((mark, text.strip()))
        reply.text = text.strip()
        reply.real_audio_started = True
        turn.first_audio_enqueued_at = self.clock()
        self.state = "speaking"
        self.rtp.enqueue(np.concatenate(audio) if audio else np.zeros(0, np.int16), mark, last=True)

    def _generate_request(self, turn: TurnRecord) -> GenerateRequest:
        return GenerateRequest(
            messages=self.memory.to_messages(self.system_prompt),
            tools=self.tools.schemas(),
            max_tokens=self.settings.llm_max_tokens,
            min_tokens=self.settings.llm_min_tokens,
            temperature=self.settings.llm_temperature,
            request_id=f"{self.session_id}-t{turn.index}",
            trace=self.tracer.context(),
        )

    def _accept_tool(self, reply: _Reply, call: ToolCall) -> None:
        checked = self.tools.check(call)
        if isinstance(checked, AcceptedToolCall):
            reply.tools.append(checked)
        else:
            self.record.errors.append(f"tool call rejected: {checked.error}")
            self.memory.add_tool_result(call.id, f"erro: {checked.error}")

    async def _speak_pieces(self, reply: _Reply, pieces: asyncio.Queue) -> None:
        while (piece := await pieces.get()) is not None:
            await self._speak(reply, piece)

    async def _speak(self, reply: _Reply, text: str) -> None:
        turn = reply.turn
        mark = self._next_mark("t")
        request = SynthesizeRequest(text=text, request_id=f"{self.session_id}-{mark}", trace=self.tracer.context())
        reply.tts_stream = self.models.synthesize(request)
        reply.pieces.append((mark, text))
        reply.text = (reply.text + " " + text).strip()
        async for chunk in reply.tts_stream:
            if not chunk.pcm:
                continue
            if not turn.tts_first_chunk_at:
                turn.tts_first_chunk_at = self.clock()
            if not reply.real_audio_started:
                reply.real_audio_started = True
                turn.first_audio_enqueued_at = self.clock()
                self.state = "speaking"
            self.rtp.enqueue(np.frombuffer(chunk.pcm, dtype="<i2"), mark)
        self.rtp.enqueue(np.zeros(0, np.int16), mark, last=True)

    async def _say_transfer_notice_if_needed(self, reply: _Reply) -> None:
        """The caller always hears where and why before a transfer, whatever the model did."""
        transfer = next((t for t in reply.tools if t.call.name == "transfer_call"), None)
        if transfer is None or reply.text:
            return
        destination = str(transfer.call.arguments.get("destination", "um atendente"))
        reason = str(transfer.call.arguments.get("reason", "")).strip()
        notice = f"Vou te transferir para {destination}" + (f", porque {reason}" if reason else "") + ". Um instante, por favor."
        await self._speak(reply, notice)

    async def _run_after_speech_tools(self, reply: _Reply) -> None:
        for accepted in reply.tools:
            call = accepted.call
            drained_at = reply.turn.drained_at
            if call.name == "transfer_call":
                destination = str(call.arguments.get("destination", ""))
                reason = str(call.arguments.get("reason", ""))
                outcome = await self.control.transfer(destination, reason)
                if outcome.ok:
                    self.record.transferred_to, self.record.transfer_reason = destination, reason
                else:
                    await self._emergency("transfer_failed", transfer=False)
            elif call.name == "end_call":
                outcome = await self.control.hangup(str(call.arguments.get("reason", "")))
            else:
                self.memory.add_tool_result(call.id, "ok")
                outcome = None
            reply.turn.tools.append(
                ToolExecution(
                    call=call, drained_at=drained_at, executed_at=self.clock(),
                    ok=bool(outcome is None or outcome.ok), detail=outcome.detail if outcome else "",
                )
            )

    # ------------------------------------------------------------------ filler, noise, emergency

    async def _greet(self) -> None:
        greeting = self.phrases.greeting if self.phrases else None
        if greeting is not None:
            self.rtp.enqueue(greeting.samples(), self._next_mark("greet"), last=True)
            self.memory.add_agent(greeting.text)
            self.record.greeting_text = greeting.text
        elif self.settings.greeting:
            reply = _Reply(TurnRecord(index=0))
            self._reply = reply
            try:
                self.record.greeting_text = self.settings.greeting
                await self._speak(reply, self.settings.greeting)
                self.memory.add_agent(self.settings.greeting)
            finally:
                self._finish_reply(reply)

    async def _filler_after_delay(self, reply: _Reply) -> None:
        await asyncio.sleep(self.settings.turn.fillers.delay_ms / 1000.0)
        if reply.real_audio_started or reply.cancelled or self.phrases is None:
            return
        phrase = self.phrases.pick("fillers", self.rng)
        if phrase is None:
            return
        reply.turn.filler_at = self.clock()
        reply.turn.filler_text = phrase.text
        self.record.fillers_played += 1
        self.rtp.enqueue(phrase.samples(), self._next_mark("filler"), last=True)

    async def _emergency(self, key: str, transfer: bool = True) -> None:
        """Something failed: say so with a pre-rendered phrase, then hand over to a human."""
        phrase = self.phrases.emergency.get(key) if self.phrases else None
        if phrase is not None:
            self.rtp.flush()
            self.rtp.enqueue(phrase.samples(), self._next_mark("emergency"), last=True)
            await self.rtp.drained()
        if transfer:
            destinations = list(self.settings.turn.tools.transfer_destinations)
            outcome = await self.control.transfer(destinations[0] if destinations else "atendimento", f"falha técnica: {key}")
            if outcome.ok:
                self.record.transferred_to = destinations[0] if destinations else "atendimento"
                self.record.transfer_reason = f"technical: {key}"
