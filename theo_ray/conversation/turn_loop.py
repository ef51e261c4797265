"""TurnLoop: one call's conversation — the turn machine LISTENING -> THINKING -> SPEAKING ->
(barge-in) LISTENING, and the wiring of the collaborators it delegates to.

- `UserTurnTracker` (user_turn.py): the caller's utterance, partials, the speculative final
  and endpointing; it announces `TurnEnded`.
- `BargeInController` (barge_in.py): the only owner of playback pause/resume while the agent
  talks; it hands an interruption back as a verdict.
- `Reply` (reply.py) + `ReplyPipeline` (reply_pipeline.py): one reply as a handle — model text
  to TTS to the line, `interrupt()`, `wait_for_playout()`.
- `AfterSpeechActions` (after_speech.py): tools once the speech drained, the transfer notice,
  emergencies; `Cues` (cues.py): filler, "uhum"; `CallLimits` (call_limits.py): silence,
  time limit, lost media.
- `KeypadListener` (keypad_listener.py): DTMF keys as typed entries and shortcuts.
- `CallerGate` (caller_gate.py): a final transcript answered, asked to repeat or read back;
  the STT hint (stt_hint.py): what the caller is answering.
Only `_enter()` writes the state and announces each change (`StateChange`); the media plane
is reached through a `PlaybackPort` and the `CallLine`'s inbound frames and keys.

Why ~460 lines: every transition (speech start, interruption, keys, end of turn, a reply
done, cancelled or failed) writes the one state and the one reply slot; split apart, each
piece would reach into the others' state.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

import numpy as np

from theo_ray.conversation.after_speech import AfterSpeechActions
from theo_ray.conversation.barge_in import BargeInController
from theo_ray.conversation.call_limits import CallLimits, caps_hit
from theo_ray.conversation.call_control import CallControl
from theo_ray.conversation.caller_gate import CallerGate
from theo_ray.conversation.cues import Cues
from theo_ray.conversation.dtmf_tool import DtmfTool
from theo_ray.conversation.echo_gate import EchoGate
from theo_ray.conversation.keypad_listener import KeypadListener
from theo_ray.conversation.line_level import LineLevel
from theo_ray.conversation.llm_chain import LanguageModelsDown
from theo_ray.conversation.model_client import ModelClient
from theo_ray.conversation.phrase_book import PhraseBook
from theo_ray.conversation.records import BargeInRecord, CallRecord, TurnRecord
from theo_ray.conversation.reply import Reply
from theo_ray.conversation.reply_pipeline import ReplyPipeline
from theo_ray.conversation.settings import ConversationSettings
from theo_ray.conversation.stream_deadline import ModelStreamTimeout
from theo_ray.conversation.transcriber import SpeechToTextFailed, Transcriber
from theo_ray.conversation.turn_spans import TurnTracer
from theo_ray.conversation.turn_state import StateChange, TurnState
from theo_ray.conversation.user_turn import TurnEnded, UserTurnTracker
from theo_ray.media.playback_port import CallLine, MarkKind, PlaybackEvent, PlaybackPort, PlayoutMark, RtpPlayback
from theo_ray.media.rtp_session import InboundFrame
from theo_ray.messages import GenerateRequest
from theo_ray.turn.keypad import TYPED_ENTRY, KeypadInput, KeypadShortcut
from theo_ray.turn.memory import ConversationMemory
from theo_ray.turn.prompt import PromptBuilder
from theo_ray.turn.tools import SEND_DTMF, ToolRegistry
from theo_ray.turn.turn_model import SmartTurn
from theo_ray.turn.vad import SileroVad

log = logging.getLogger("theo.turn")


class TurnLoop:
    def __init__(
        self,
        session_id: str,
        rtp: CallLine,
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
        playback: PlaybackPort | None = None,
    ) -> None:
        self.session_id = session_id
        self.rtp = rtp  # inbound frames, the echo reference and the arrival probe
        self.playback = playback or RtpPlayback(rtp)
        self.settings = settings
        self.phrases = phrases
        self.clock = clock
        self.rng = rng or random.Random()
        ts = settings.turn
        ptime_ms = rtp.ptime_ms
        self.vad = vad or SileroVad(ts.vad)
        self.memory = memory or ConversationMemory(ts.memory)
        self.tools = ToolRegistry(ts.tools)
        self.system_prompt = PromptBuilder(ts.prompt).build(ts.tools.transfer_destinations)
        self.echo_gate = EchoGate(settings.echo_gate, ptime_ms)
        self.tracer = tracer or TurnTracer(session_id)
        self.record = CallRecord(session_id=session_id, started_at=clock(), trace_id=self.tracer.trace_id)
        self._state = TurnState.LISTENING
        self._state_listeners: list[Callable[[StateChange], None]] = []
        self._reply: Reply | None = None
        self._turns = 0
        self._marks = 0
        self._tasks: list[asyncio.Task] = []
        self._done = asyncio.Event()
        barge = settings.barge_in
        self.line_level = LineLevel(barge.energy_pause_rms, barge.energy_pause_rise_db)
        self.gate = CallerGate(settings, self.record)
        transcriber = Transcriber(models, settings.timeouts.stt_s, self.record, self.tracer.context,
                                  hint=lambda: self.gate.stt_hint(self.memory.turns))
        self.user_turn = UserTurnTracker(
            settings, self.vad, self.line_level, transcriber, smart_turn, clock, ptime_ms,
            blocked=lambda: self.barge_in.active or self._state is TurnState.ENDED,
            on_turn_end=self._on_turn_end, on_long_pause=lambda: self.cues.backchannel(),
        )
        self.barge_in = BargeInController(
            settings, self.playback, self.vad, self.line_level, self.echo_gate, self.record, self.tracer, clock,
            jitter_depth_ms=lambda: rtp.jitter_depth_ms, on_interrupt=self._on_interrupt,
        )
        self.cues = Cues(settings, phrases, self.playback, self.record, self.rng, clock, self._next_mark)
        self.actions = AfterSpeechActions(
            settings, self.tools, self.memory, control, self.record, self.playback, phrases, clock, self._next_mark,
        )
        if ts.tools.send_dtmf:
            self.actions.bind(SEND_DTMF, DtmfTool(rtp, self.record))
        self.pipeline = ReplyPipeline(
            session_id, self.record, models, self.playback, settings, clock, self.tracer.context, self._next_mark,
            accept_tool=self.actions.accept, on_audible=self._on_audible,
        )
        self._last_sound_at = clock()  # the last instant either side made a sound
        self.limits = CallLimits(
            session_id, settings, clock, self.record, self.actions, self._quiet_since,
            current_reply=lambda: self._reply, expects_media=lambda: rtp.direction in ("sendrecv", "recvonly"),
        )
        self.keypad = (
            KeypadListener(settings.keypad, rtp.telephone_events, clock, self.record, self._on_keypad)
            if settings.keypad.enabled else None
        )
        self.playback.subscribe(self._on_playback)
        rtp.set_arrival_probe(lambda rms, _at: self.barge_in.on_packet(rms) if self._state is not TurnState.ENDED else None)

    # ------------------------------------------------------------------ the state

    @property
    def state(self) -> str:
        return self._state.value

    def subscribe_states(self, callback: Callable[[StateChange], None]) -> None:
        self._state_listeners.append(callback)

    def _enter(self, state: TurnState, why: str) -> None:
        """The only writer of the turn machine's state."""
        if state is self._state or self._state is TurnState.ENDED:
            return
        change = StateChange(state, self._state, self.clock(), why)
        self._state = state
        for callback in self._state_listeners:
            callback(change)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, greet: bool = True, resumed: bool = False) -> None:
        """Start the loop; returns at once (the work runs in tasks until stop()). `resumed`:
        this loop takes over a call whose first CallActor died — an apology instead of the
        greeting, the memory it was given kept."""
        self._tasks.append(asyncio.create_task(self._inbound(), name=f"inbound-{self.session_id}"))
        if resumed:
            if said := self.actions.say("resumed"):
                self.memory.add_agent(said)
        elif greet:
            self._tasks.append(asyncio.create_task(self._greet(), name=f"greet-{self.session_id}"))
        for watcher in self.limits.watchers():
            self._tasks.append(asyncio.create_task(watcher))
        if self.keypad is not None:
            self._tasks.append(asyncio.create_task(self.keypad.run(), name=f"keypad-{self.session_id}"))

    async def stop(self, reason: str) -> CallRecord:
        if self._state is TurnState.ENDED:
            return self.record
        self._enter(TurnState.ENDED, reason)
        self.record.end_reason = self.record.end_reason or reason
        self.record.ended_at = self.clock()
        self.record.limits_hit = caps_hit(self.record.end_reason, self.memory.stats, self.tools.stats)
        reply = self._reply
        if reply is not None:
            # Its streams fail with "cancelled" from here on: that is the hang-up, not an error.
            reply.cancel()
            reply.turn.agent_text = reply.text
            self.record.turns.append(reply.turn)  # the reply the hang-up cut short
        if self.user_turn.utterance is not None:
            self.user_turn.utterance.cancel_tasks()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.limits.stop()
        if reply is not None and reply.task is not None:
            await asyncio.gather(reply.task, return_exceptions=True)
        self.tracer.end_call(self.record)
        self._done.set()
        return self.record

    def current_turn(self) -> TurnRecord | None:
        return self._reply.turn if self._reply is not None else None

    async def wait_ended(self) -> None:
        await self._done.wait()

    def _next_mark(self, kind: MarkKind) -> PlayoutMark:
        self._marks += 1
        return PlayoutMark(kind, self._turns, self._marks)

    def _on_playback(self, event: PlaybackEvent) -> None:
        if event.kind in ("mark_started", "mark_done"):
            self._last_sound_at = max(self._last_sound_at, event.at)
        reply = self._reply
        if event.kind == "mark_started" and reply is not None and event.mark is not None and event.mark.kind.is_reply_audio:
            reply.turn.stamp("first_rtp", event.at)

    # ------------------------------------------------------------------ inbound frames

    async def _inbound(self) -> None:
        try:
            async for frame in self.rtp.frames():
                if self._state is TurnState.ENDED:
                    return
                self._on_frame(frame)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never let the call die silently: log, then fall back
            log.exception("inbound loop failed")
            self.record.errors.append(f"inbound: {type(exc).__name__}: {exc}")
            await self.actions.emergency("technical_problem")

    def _on_frame(self, frame: InboundFrame) -> None:
        pcm = frame.pcm
        # What the playout sent in this tick (the same tick delivered this frame).
        self.echo_gate.on_reference(self.rtp.last_sent_pcm())
        # The gate judges every frame: the echo tail outlives the agent's last packet.
        echo = self.echo_gate.is_echo_only(pcm)
        agent_audible = self.barge_in.agent_audible()
        if not frame.concealed:
            self.limits.packet_seen(frame.at)
        events = self.vad.process(np.zeros_like(pcm) if echo else pcm)
        if self.vad.speaking:
            self._last_sound_at = frame.at
        self.user_turn.feed(pcm)
        self.barge_in.on_frame(pcm, echo, agent_audible)
        for event in events:
            if event.kind == "speech_start":
                self._on_speech_start(frame.at - self.settings.turn.vad.min_speech_ms / 1000.0)
            else:
                self.user_turn.on_speech_end(frame.at, over_agent=self.barge_in.active)
                self.barge_in.on_speech_end()
        step = self.barge_in.after_frame(self.user_turn.utterance, self.clock())
        if step == "dismissed":
            self.user_turn.drop()
        elif step == "none":
            self.user_turn.after_frame(self.clock())

    def _on_speech_start(self, onset: float) -> None:
        self.limits.caller_spoke()
        reply = self._reply
        if self._state is TurnState.THINKING and reply is not None and not reply.audible:
            # The caller went on talking before we answered (a pause mid-sentence, or a
            # correction in the thinking gap): drop the reply and continue the same
            # utterance, audio included, as one turn. A filler playing stops at once: it must
            # not sound like the agent talking over the caller.
            self.playback.flush()
            self.record.resumed_turns.append((reply.turn.end_of_turn_at, reply.turn.endpoint_rule))
            self._cancel_reply("caller continued", record_turn=False)
            if reply.utterance is not None and self.user_turn.utterance is None:
                self.user_turn.resume(reply.utterance)
                self._turns -= 1
        else:
            self.barge_in.on_speech_start(onset)
        self.user_turn.on_speech_start(onset)

    def _on_interrupt(self, barge: BargeInRecord) -> None:
        """The barge-in controller's verdict: a real interruption. Stop for good, remember
        what was heard; the caller's words so far start their new turn."""
        barge.heard = self._interrupt_reply("barge-in")
        self.user_turn.after_interrupt()

    def _interrupt_reply(self, why: str) -> str:
        """Stop what is playing for good; what the caller heard of the reply ("" if none)."""
        reply = self._reply
        if reply is None or not reply.audible:
            self.playback.flush()
            self._cancel_reply(why)
            return ""
        heard = reply.interrupt()
        self.memory.add_agent(reply.text, heard=heard)
        self._cancel_reply(why, record_memory=False)
        return heard


    def _on_keypad(self, keypad_input: KeypadInput) -> None:
        """Keys typed: they take the floor like words — what is playing stops."""
        if self._state is TurnState.ENDED or self.limits.closing:
            return
        self._interrupt_reply("keypad")
        if isinstance(keypad_input, KeypadShortcut):
            self._tasks.append(asyncio.create_task(self.actions.keypad_shortcut(keypad_input)))
            return
        self._turns += 1
        turn = TurnRecord(index=self._turns, end_of_turn_at=keypad_input.at, endpoint_rule="keypad",
                          endpoint_reason=keypad_input.ended_by)
        self._start_reply(Reply(turn, self.playback), "keypad entry", typed=keypad_input.digits)

    # ------------------------------------------------------------------ replies

    def _on_turn_end(self, ended: TurnEnded) -> None:
        if self.limits.closing:
            return  # the call is being closed: no new reply
        self._turns += 1
        turn = TurnRecord(
            index=self._turns, speech_end_at=ended.utterance.speech_end_at, end_of_turn_at=ended.at,
            endpoint_rule=ended.rule, endpoint_reason=ended.reason,
        )
        self.user_turn.start_new_turn()
        self._start_reply(Reply(turn, self.playback, ended.utterance), ended.rule)

    def _start_reply(self, reply: Reply, why: str, typed: str = "") -> None:
        reply.typed = TYPED_ENTRY.format(digits=typed) if typed else ""
        self._set_reply(reply)
        self._enter(TurnState.THINKING, f"end of turn {reply.turn.index} ({why})")
        reply.task = asyncio.create_task(self._respond(reply), name=f"reply-{reply.turn.index}")

    def _set_reply(self, reply: Reply | None) -> None:
        self._reply = reply
        self.barge_in.reply = reply

    def _on_audible(self, reply: Reply) -> None:
        if reply is self._reply:
            self._enter(TurnState.SPEAKING, f"reply {reply.turn.index} audible")

    def _cancel_reply(self, why: str, record_memory: bool = True, record_turn: bool = True) -> None:
        reply = self._reply
        if reply is None:
            return
        reply.cancel()
        if record_memory and reply.text:
            self.memory.add_agent(reply.text, heard="")
        reply.turn.agent_text = reply.text
        if record_turn:
            self.record.turns.append(reply.turn)
        self._set_reply(None)
        self._enter(TurnState.LISTENING, why)
        log.info("reply %d cancelled: %s", reply.turn.index, why)

    def _finish_reply(self, reply: Reply) -> None:
        reply.turn.agent_text = reply.text
        if self._reply is reply:
            self._set_reply(None)
            self.record.turns.append(reply.turn)
            self._enter(TurnState.LISTENING, f"reply {reply.turn.index} done")

    def _request(self, turn: TurnRecord) -> GenerateRequest:
        return GenerateRequest(
            messages=self.memory.to_messages(self.system_prompt),
            tools=self.tools.schemas(),
            max_tokens=self.settings.llm_max_tokens,
            min_tokens=self.settings.llm_min_tokens,
            temperature=self.settings.llm_temperature,
            request_id=f"{self.session_id}-t{turn.index}",
            trace=self.tracer.context(),
        )

    async def _respond(self, reply: Reply) -> None:
        turn = reply.turn
        filler = None
        if self.settings.pipeline == "streaming":
            filler = asyncio.create_task(self.cues.filler_after_delay(reply))
        try:
            words = ()
            if reply.typed:
                turn.stamp("stt_final", self.clock())
                turn.caller_text = reply.typed
            else:
                final = await self.user_turn.final_text(reply.utterance)
                turn.stamp("stt_final", self.clock())
                turn.stt_ms = (turn.stt_final_at - final.waited_from) * 1000.0
                turn.caller_text, turn.caller_logprob, words = final.text, final.logprob, final.words
            if not turn.caller_text:
                self._finish_reply(reply)  # noise that looked like speech: nothing to answer
                return
            verdict = self.gate.judge(turn, words)  # not a guess answered: repeat, or read back
            if verdict.action == "repeat":
                self._finish_reply(reply)
                await self.actions.ask_to_repeat(verdict.key)
                return
            if verdict.action == "read_back":
                await self.pipeline.speak(reply, verdict.text)
                turn.stamp("drained", await reply.wait_for_playout())
                self._finish_reply(reply)
                return
            self.memory.add_caller(verdict.text)
            await self.pipeline.run(reply, self._request(turn))
            if filler is not None:
                filler.cancel()
            notice = self.actions.notice_for(reply)
            if notice:
                await self.pipeline.speak(reply, notice, MarkKind.NOTICE)
            turn.stamp("drained", await reply.wait_for_playout())
            self.memory.add_agent(reply.text, tool_calls=[t.call for t in reply.tools])
            self._finish_reply(reply)
            await self.actions.run_tools(reply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if reply.cancelled:
                return  # its streams were cancelled on purpose (barge-in, caller went on)
            if isinstance(exc, ModelStreamTimeout):
                self.record.count_timeout(exc.stage)
            if isinstance(exc, (ModelStreamTimeout, LanguageModelsDown, SpeechToTextFailed)):
                log.warning("%s: reply %d: %s", self.session_id, turn.index, exc)
            else:
                log.exception("reply failed")
            turn.error = f"{type(exc).__name__}: {exc}"
            self.record.errors.append(f"reply {turn.index}: {turn.error}")
            if filler is not None:
                filler.cancel()  # before the emergency phrase: no filler may follow it
            self._finish_reply(reply)
            if isinstance(exc, SpeechToTextFailed) and exc.consecutive < 2:
                await self.actions.ask_to_repeat()  # once: a lost request is not yet STT down
            else:
                await self.actions.emergency("technical_problem")
        finally:
            if filler is not None:
                filler.cancel()
            self.tracer.turn_done(turn)
            if self.memory.needs_summary:
                asyncio.create_task(self.memory.summarise())


    def _quiet_since(self) -> float | None:
        """Since when neither side has made a sound; None while one is (or may be) busy."""
        if (
            self._state is not TurnState.LISTENING
            or self.limits.closing
            or self.user_turn.utterance is not None
            or self.vad.speaking
            or self.barge_in.agent_audible()
        ):
            return None
        return self._last_sound_at

    # ------------------------------------------------------------------ greeting

    async def _greet(self) -> None:
        greeting = self.phrases.greeting if self.phrases else None
        if greeting is not None:
            self.playback.enqueue(greeting.samples(), self._next_mark(MarkKind.GREETING), last=True)
            self.memory.add_agent(greeting.text)
            self.record.greeting_text = greeting.text
        elif self.settings.greeting:
            reply = Reply(TurnRecord(index=0), self.playback)
            self._set_reply(reply)
            try:
                self.record.greeting_text = self.settings.greeting
                await self.pipeline.speak(reply, self.settings.greeting, MarkKind.GREETING)
                self.memory.add_agent(self.settings.greeting)
            finally:
                self._finish_reply(reply)
