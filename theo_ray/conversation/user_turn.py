"""UserTurnTracker: the caller's side of a turn — the utterance being spoken (pre-roll
included), streaming partials, the speculative final transcript and the turn model started
at each VAD speech end, and the endpointing decision that ends the turn.

It never touches playback or the reply: it announces `TurnEnded` (and a long caller turn's
pause that deserves an "uhum") through callbacks, and the turn machine decides what follows.
The barge-in controller reads the same utterance while the agent is talking; `blocked()`
says when endpointing must wait for it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
import numpy as np

from theo_ray.conversation.line_level import LineLevel
from theo_ray.conversation.partials import StablePartial
from theo_ray.conversation.settings import ConversationSettings
from theo_ray.conversation.transcriber import Transcriber
from theo_ray.messages import Word
from theo_ray.turn.endpointer import SmartEndpointer
from theo_ray.turn.turn_model import SmartTurn
from theo_ray.turn.vad import SileroVad

log = logging.getLogger("theo.turn")
RATE = 16000


class Utterance:
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

    def drop_speculation(self) -> None:
        """Speech resumed: the final and the turn model computed at the last pause are stale."""
        for name in ("final_task", "turn_prob_task"):
            task = getattr(self, name)
            if task is not None:
                task.cancel()
                setattr(self, name, None)
        self.speech_end_at = 0.0

    def cancel_tasks(self) -> None:
        for task in (self.partial_task, self.final_task, self.turn_prob_task):
            if task and not task.done():
                task.cancel()
        if self.end_check is not None:
            self.end_check.cancel()


@dataclass(frozen=True)
class TurnEnded:
    utterance: Utterance
    at: float
    rule: str
    reason: str


@dataclass(frozen=True)
class FinalTranscript:
    text: str
    waited_from: float  # when the turn machine started waiting for it
    logprob: float = 0.0  # Whisper's confidence (Transcript.logprob)
    words: tuple[Word, ...] = ()  # with the decoder's probability of each (Transcript.words)


class UserTurnTracker:
    def __init__(
        self,
        settings: ConversationSettings,
        vad: SileroVad,
        line_level: LineLevel,
        transcriber: Transcriber,
        smart_turn: SmartTurn | None,
        clock: Callable[[], float],
        ptime_ms: int,
        blocked: Callable[[], bool],
        on_turn_end: Callable[[TurnEnded], None],
        on_long_pause: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self.vad = vad
        self.line_level = line_level
        self.transcriber = transcriber
        self.smart_turn = smart_turn
        self.clock = clock
        self.blocked = blocked
        self.on_turn_end = on_turn_end
        self.on_long_pause = on_long_pause
        self.endpointer = SmartEndpointer(settings.turn.endpointing)
        self.utterance: Utterance | None = None
        self._preroll: collections.deque[np.ndarray] = collections.deque(maxlen=max(1, settings.preroll_ms // ptime_ms))
        self._speech_ms_in_turn = 0.0
        self._backchannel_played = False

    @property
    def sequential(self) -> bool:
        return self.settings.pipeline == "sequential"

    # ------------------------------------------------------------------ audio and VAD events

    def feed(self, pcm: np.ndarray) -> None:
        if self.utterance is not None:
            self.utterance.frames.append(pcm)
        else:
            self._preroll.append(pcm)

    def on_speech_start(self, onset: float) -> None:
        if self.utterance is None:
            self.utterance = Utterance(list(self._preroll), onset)
            self._preroll.clear()
        else:
            self.utterance.drop_speculation()  # speech resumed during the endpointing wait: same turn

    def resume(self, utterance: Utterance) -> None:
        """The caller went on talking before the answer: their earlier words, the audio in
        between included, stay one utterance."""
        if self.utterance is None:
            self.utterance = utterance
            utterance.frames.extend(self._preroll)
            self._preroll.clear()

    def on_speech_end(self, fed_at: float, over_agent: bool) -> None:
        utt = self.utterance
        if utt is None:
            return
        utt.speech_end_at = self._speech_end_at(fed_at)
        self._speech_ms_in_turn += self.vad.speech_ms
        if over_agent:
            # A burst over the agent: transcribe it for the barge-in controller's verdict.
            utt.final_task = asyncio.create_task(self.transcriber.transcribe(utt.audio(), final=True))
            return
        if self.sequential:
            return  # the batch baseline transcribes once the turn has ended (final_text)
        # Speculative final STT and turn-model probability while the endpointer waits; a
        # partial still in flight would only queue in front of it.
        audio = utt.audio()
        if utt.partial_task is not None and not utt.partial_task.done():
            utt.partial_task.cancel()
        utt.final_task = asyncio.create_task(self.transcriber.transcribe(audio, final=True))
        utt.final_task.add_done_callback(lambda _t: self.recheck(utt))
        if self.smart_turn is not None:
            utt.turn_prob_task = asyncio.create_task(self.smart_turn.predict_async(audio[-8 * RATE :]))
            utt.turn_prob_task.add_done_callback(lambda _t: self.recheck(utt))

    def _speech_end_at(self, fed_at: float) -> float:
        """Clock time the caller stopped talking; `fed_at` is when the newest audio fed to the
        VAD was handed out (its end)."""
        vad = self.settings.turn.vad
        end_ms = self.vad.energy_speech_end_ms(self.line_level.above_floor(vad.end_energy_rms), vad.end_lookback_ms)
        return fed_at - (self.vad.fed_ms - end_ms) / 1000.0

    def after_frame(self, now: float) -> None:
        """Partials while the caller talks; in a pause, the "uhum" and the endpointing decision."""
        utt = self.utterance
        if utt is None:
            return
        if self.vad.speaking:
            self._maybe_partial(utt)
            return
        if not utt.speech_end_at:
            return
        self._maybe_backchannel()
        self._maybe_end_turn(utt, now)

    # ------------------------------------------------------------------ after a barge-in verdict

    def drop(self) -> None:
        """The burst over the agent was a backchannel or noise: it is no turn."""
        self.utterance = None

    def after_interrupt(self) -> None:
        """The burst interrupted the agent: the caller's words so far start their new turn."""
        utt = self.utterance
        if utt is None:
            return
        utt.final_task = None
        if not self.vad.speaking:
            utt.speech_end_at = self._speech_end_at(self.clock())
            utt.final_task = asyncio.create_task(self.transcriber.transcribe(utt.audio(), final=True))

    def start_new_turn(self) -> None:
        """A reply started: the next long caller turn may get its own "uhum"."""
        self._speech_ms_in_turn = 0.0
        self._backchannel_played = False

    # ------------------------------------------------------------------ partials, backchannel

    def _maybe_partial(self, utt: Utterance) -> None:
        if self.sequential:
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
            utt.partial.update((await self.transcriber.transcribe(audio)).text)

        utt.partial_task = asyncio.create_task(partial())

    def _maybe_backchannel(self) -> None:
        s = self.settings
        if (
            not s.backchannel_after_speech_ms
            or self._backchannel_played
            or self._speech_ms_in_turn < s.backchannel_after_speech_ms
            or self.vad.silence_ms < s.backchannel_pause_ms
        ):
            return
        self._backchannel_played = self.on_long_pause()  # one per long turn

    # ------------------------------------------------------------------ endpointing

    def _maybe_end_turn(self, utt: Utterance, now: float) -> None:
        silence_ms = (now - utt.speech_end_at) * 1000.0
        if self.sequential:
            self._end_turn_on_silence(utt, now, silence_ms)
            return
        max_silence_ms = self.settings.turn.endpointing.max_silence_ms
        text = utt.partial.text
        final = utt.final_task
        if final is not None and not final.done() and silence_ms < max_silence_ms:
            # The speculative final covers the whole utterance; the partial is older and may
            # end before the last words ("Meu CPF é" without the digits that make the
            # dictation rule wait). The reply needs the final anyway, so deciding on it costs
            # nothing: its arrival re-decides at once (recheck).
            return
        if final is not None and final.done() and not final.cancelled() and final.exception() is None:
            text = final.result().text or text
        prob = None
        prob_task = utt.turn_prob_task
        if prob_task is not None and prob_task.done() and not prob_task.cancelled() and prob_task.exception() is None:
            prob = prob_task.result().probability
        if not text and silence_ms < max_silence_ms:
            # The linguistic rules need words (is the caller dictating digits?): a final that
            # heard nothing (noise) or failed is not guessed at; max_silence ends the turn.
            return
        decision = self.endpointer.decide(text.strip(), silence_ms, prob, self._speech_ms_in_turn)
        if not decision.end_of_turn:
            # Decide again the moment this rule's wait is over, not at the next frame (the
            # transcript or the turn model arriving also re-decides: recheck).
            self._decide_again_in(utt, decision.wait_ms - silence_ms)
            return
        log.info("end of turn: %s", msgspec.json.encode(decision).decode())
        self._end(utt, now, decision.rule, decision.reason)

    def _end_turn_on_silence(self, utt: Utterance, now: float, silence_ms: float) -> None:
        """The batch baseline's endpointing: VAD silence of `endpointing.base_silence_ms`, no
        transcript and no turn model (it has neither before the turn ends)."""
        wait_ms = self.settings.turn.endpointing.base_silence_ms
        if silence_ms < wait_ms:
            self._decide_again_in(utt, wait_ms - silence_ms)
            return
        self._end(utt, now, "vad_silence", f"sequential baseline: {wait_ms} ms of VAD silence")

    def _decide_again_in(self, utt: Utterance, delay_ms: float) -> None:
        if utt.end_check is not None:
            utt.end_check.cancel()
        # At least 1 ms: a wait that is over but for float rounding (silence 1599.9999999 ms of
        # a 1600 ms rule) would otherwise re-decide at the same instant, forever.
        utt.end_check = asyncio.get_running_loop().call_later(max(0.001, delay_ms / 1000.0), self.recheck, utt)

    def recheck(self, utt: Utterance) -> None:
        """Endpointing between frames: the speculative transcript or the turn model is in, or
        the silence a rule asked for has passed."""
        if self.utterance is not utt or self.blocked() or self.vad.speaking or not utt.speech_end_at:
            return
        self._maybe_end_turn(utt, self.clock())

    def _end(self, utt: Utterance, now: float, rule: str, reason: str) -> None:
        self.utterance = None
        self.on_turn_end(TurnEnded(utt, now, rule, reason))

    # ------------------------------------------------------------------ the reply's transcript

    async def final_text(self, utt: Utterance) -> FinalTranscript:
        """The whole utterance's transcript. The speculative final (started at VAD speech end)
        stands unless speech resumed since, which cancels it: the frames added since are the
        endpointing silence (measured, redoing the transcription for them cost a whole STT
        pass per turn). The sequential baseline never started one: it transcribes the whole
        utterance once the turn has ended, as a batch pipeline does."""
        if utt.final_task is None or utt.final_task.cancelled():
            utt.final_task = asyncio.create_task(self.transcriber.transcribe(utt.audio(), final=True))
        waited_from = self.clock()
        transcript = await utt.final_task
        return FinalTranscript(transcript.text, waited_from, transcript.logprob, tuple(transcript.words))
