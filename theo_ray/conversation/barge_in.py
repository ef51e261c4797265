"""BargeInController: the caller talking over the agent — the only owner of playback
pause and resume.

Fast paths pause the reply at once (a loud packet at arrival that no echo of ours explains;
a loud non-echo frame or one likely-speech VAD window); the pause is reversible. A VAD
speech start over the agent opens a barge-in; its verdict — interruption, backchannel or
noise — comes from the early speech length or the burst's transcript. An interruption is
handed to the turn machine (`on_interrupt`), which stops the reply through its handle;
anything else resumes playback exactly where it paused. A pause nothing confirms resumes
after `unconfirmed_resume_ms`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from theo_ray.conversation.echo_gate import EchoGate
from theo_ray.conversation.line_level import LineLevel
from theo_ray.conversation.records import BargeInRecord, CallRecord
from theo_ray.conversation.reply import Reply
from theo_ray.conversation.settings import ConversationSettings
from theo_ray.conversation.turn_spans import TurnTracer
from theo_ray.conversation.user_turn import Utterance
from theo_ray.media.playback_port import PlaybackEvent, PlaybackPort
from theo_ray.turn.backchannel import BackchannelDetector
from theo_ray.turn.vad import SileroVad

AGENT_AUDIO_HOLD_S = 0.1  # agent audio sent this recently still counts as the agent talking

# What one frame did to the barge-in: none open; one open (the user turn waits); closed as
# a backchannel or noise (the burst is no turn); closed as an interruption.
BargeStep = Literal["none", "open", "dismissed", "interrupted"]


class BargeInController:
    def __init__(
        self,
        settings: ConversationSettings,
        playback: PlaybackPort,
        vad: SileroVad,
        line_level: LineLevel,
        echo_gate: EchoGate,
        record: CallRecord,
        tracer: TurnTracer,
        clock: Callable[[], float],
        jitter_depth_ms: Callable[[], float],
        on_interrupt: Callable[[BargeInRecord], None],
    ) -> None:
        self.settings = settings
        self.playback = playback
        self.vad = vad
        self.line_level = line_level
        self.echo_gate = echo_gate
        self.record = record
        self.tracer = tracer
        self.clock = clock
        self.jitter_depth_ms = jitter_depth_ms
        self.on_interrupt = on_interrupt
        self.detector = BackchannelDetector(settings.turn.backchannel)
        self.reply: Reply | None = None  # the reply the caller may barge in on (set by the turn machine)
        self.barge: BargeInRecord | None = None
        self._paused_at: float | None = None
        self._verdict_pending = False  # the burst ended; its transcript decides
        self._last_audio_at = 0.0
        playback.subscribe(self._on_playback)

    @property
    def active(self) -> bool:
        return self.barge is not None

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def _on_playback(self, event: PlaybackEvent) -> None:
        if event.kind in ("mark_started", "mark_done"):
            self._last_audio_at = event.at

    def _reply_audible(self) -> bool:
        return self.reply is not None and self.reply.audible and not self.reply.cancelled

    def agent_audible(self) -> bool:
        """The agent is talking: a reply whose audio started and has not finished, gaps
        included (TTS may run dry between two pieces, and a caller may talk into that gap:
        measured, the barge-in then waited for the agent's next syllable), or other agent
        audio (greeting, filler) sent within the last 100 ms, or a pause in effect."""
        if self._reply_audible():
            return True
        return (self.clock() - self._last_audio_at) < AGENT_AUDIO_HOLD_S or self._paused_at is not None

    def _pause(self) -> None:
        self.playback.pause()
        self._paused_at = self.clock()

    def _resume(self) -> None:
        self.playback.resume()
        self._paused_at = None

    # ------------------------------------------------------------------ fast paths

    def on_packet(self, rms: float) -> None:
        """At packet arrival, a jitter-buffer depth before the frame path: a packet louder
        than the line's floor + `energy_pause_rise_db` (and at least `energy_pause_rms`) that
        no echo of ours can explain pauses playout (fade over one packet)."""
        barge = self.settings.barge_in
        threshold = self.line_level.pause_threshold
        self.line_level.update(rms)
        if (
            barge.energy_pause_rms <= 0
            or rms <= threshold
            or self._paused_at is not None
            or not self._reply_audible()
            or not self.agent_audible()
            or self.echo_gate.could_be_echo(rms, lead_ms=self.jitter_depth_ms())
        ):
            return
        self._pause()
        self.record.early_pauses += 1

    def on_frame(self, pcm: np.ndarray, echo: bool, agent_audible: bool) -> None:
        """A loud non-echo frame or one likely-speech VAD window pauses playout at once
        (`agent_audible` as it was before this frame reached the VAD)."""
        if not agent_audible or self._paused_at is not None or not self._reply_audible():
            return
        barge = self.settings.barge_in
        loud = (
            not echo
            and barge.energy_pause_rms > 0
            and float(np.sqrt(np.mean(pcm.astype(np.float32) ** 2))) > self.line_level.pause_threshold
        )
        if loud or self.vad.probability >= barge.pause_probability:
            self._pause()

    # ------------------------------------------------------------------ the barge-in itself

    def on_speech_start(self, onset: float) -> bool:
        """VAD speech start: True when it is over the agent's reply (a barge-in opens)."""
        if self.reply is None or not self.agent_audible():
            return False
        if self._paused_at is None:
            self._pause()
        self.barge = BargeInRecord(onset_at=onset, paused_at=self._paused_at or self.clock())
        self.tracer.barge_in_started(self.barge)
        return True

    def on_speech_end(self) -> None:
        if self.barge is not None:
            self._verdict_pending = True  # the tracker is transcribing the burst

    def after_frame(self, utt: Utterance | None, now: float) -> BargeStep:
        """Per frame: undo an unconfirmed pause; decide an open barge-in."""
        if (
            self._paused_at is not None
            and self.barge is None
            and now - self._paused_at > self.settings.barge_in.unconfirmed_resume_ms / 1000.0
        ):
            self._resume()  # a click, a breath
        if self.barge is None:
            return "none"
        if utt is None:
            return "open"
        return self._decide(self.barge, utt, now)

    def _decide(self, barge: BargeInRecord, utt: Utterance, now: float) -> BargeStep:
        if self.vad.speaking:
            if self.detector.early_verdict(self.vad.speech_ms).kind == "interruption":
                self._interrupt(barge, now)
                return "interrupted"
            return "open"
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
            self._resume()
        if not self._verdict_pending or task is None or not task.done():
            return "open"
        self._verdict_pending = False
        heard = None if task.cancelled() or task.exception() else task.result()
        text = heard.text if heard else ""
        probs = [w.probability for w in heard.words] if heard else []
        verdict = self.detector.classify(text, self.vad.speech_ms, sum(probs) / len(probs) if probs else None)
        barge.caller_text = text
        if verdict.kind in ("backchannel", "noise"):
            barge.verdict, barge.decided_at = verdict.kind, now
            self._close(barge)
            self._resume()  # continue exactly where it paused
            return "dismissed"
        self._interrupt(barge, now)
        return "interrupted"

    def _interrupt(self, barge: BargeInRecord, now: float) -> None:
        barge.verdict, barge.decided_at = "interruption", now
        self._paused_at = None  # the reply's interrupt() flushes: nothing is left to resume
        self._verdict_pending = False
        self.on_interrupt(barge)
        self._close(barge)

    def _close(self, barge: BargeInRecord) -> None:
        self.record.barge_ins.append(barge)
        self.tracer.barge_in_ended(barge)
        self.barge = None
