"""Runs a scenario on a connected call, as the caller, and records both directions.

``run_scenario`` plays the steps on a caller-side RtpSession that is already started towards
the agent (:class:`CallerMedia`): it speaks through :class:`CallerLine`, listens through
:class:`AgentAudioWatcher`, and writes one :class:`CallRecording` — the caller's audio at the
sample where it was sent, the agent's at the sample where it arrived — plus the events the
analysis relies on (see recording.py). Every wait is bounded by the step's timeout or a
default, and the whole call by ``scenario.max_duration_s``. At the end it saves the stereo
WAV, the events JSON and a result JSON into ``out_dir`` and returns a :class:`CallRunResult`
with the caller-side analysis.

Placing the call first (SIP, then the caller's RTP towards the answer) is
:func:`theo_ray.sim.call_dialer.dial_and_run`'s job.

DTMF: a ``dtmf`` step sends RFC 4733 telephone events in the caller's RTP stream (the
audio waits while a key is on the wire); ``unsupported`` when the agent's SDP answer
negotiated no telephone-event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec
import numpy as np
import soxr

from theo_ray.media.rtp_session import MediaStats, RtpSession
from theo_ray.sim.agent_audio import AgentAudioStats, AgentAudioWatcher
from theo_ray.sim.analysis import AnalysisSettings, CallAnalysis, analyse
from theo_ray.sim.caller_line import CallerLine
from theo_ray.sim.caller_voice import CallerVoice
from theo_ray.sim.call_outcome import CallOutcome
from theo_ray.sim.recording import CallRecording
from theo_ray.sim.scenario import BargeIn, Dtmf, Hangup, Say, Scenario, Silence, Step, WaitAgent, utterance_label

EndedBy = Literal["caller", "agent", "timeout", "error"]
StepStatus = Literal["done", "timeout", "unsupported", "skipped", "cut"]


class RunnerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    recording_rate: int = 16000
    # Send silence between utterances, as a phone does (see CallerLine).
    send_silence: bool = True
    # Extra time an utterance may take beyond its own length to go out.
    send_timeout_s: float = 10.0
    analysis: AnalysisSettings = AnalysisSettings()


@dataclass(frozen=True)
class CallerMedia:
    """A started caller-side RtpSession and what it is connected to.

    The session must use the clock passed to ``run_scenario`` and take PCM at the
    recording's rate (``model_rate`` = ``RunnerSettings.recording_rate``). ``ended`` is set by
    whoever sees the far end hang up (the SIP side).
    """

    session: RtpSession
    remote: tuple[str, int]
    codec: str
    ended: asyncio.Event | None = None


class StepNote(msgspec.Struct, frozen=True):
    """What happened to one scenario step (times in ms on the recording's timeline)."""

    index: int
    action: str
    status: StepStatus
    started_ms: float
    ended_ms: float
    label: str = ""
    detail: str = ""


class CallRunResult(msgspec.Struct, frozen=True):
    scenario: str
    wav_path: str
    events_path: str
    result_path: str
    ended_by: EndedBy
    duration_ms: float
    codec: str
    steps: list[StepNote]
    analysis: CallAnalysis
    media: MediaStats
    agent_audio: AgentAudioStats
    error: str = ""
    started_at_unix: float = 0.0

    def outcome(self) -> CallOutcome:
        """How the call ended, for conversation_metrics.summarise_call."""
        return CallOutcome(ended_by=self.ended_by, error=self.error)


async def render_utterances(
    scenario: Scenario, voice: CallerVoice, rate: int = RunnerSettings().recording_rate
) -> dict[int, np.ndarray]:
    """Step index -> the utterance as int16 PCM at ``rate`` (render before dialling: synthesis is slow)."""
    out: dict[int, np.ndarray] = {}
    loop = asyncio.get_running_loop()
    for index, step in enumerate(scenario.steps):
        if isinstance(step, (Say, BargeIn)):
            pcm = await voice.render(step)
            if voice.sample_rate != rate:
                pcm = await loop.run_in_executor(None, _resample, pcm, voice.sample_rate, rate)
            out[index] = pcm
    return out


def _resample(pcm: np.ndarray, src: int, dst: int) -> np.ndarray:
    return soxr.resample(pcm, src, dst, quality="HQ").astype(np.int16)


class _Ended(Exception):
    """The far end hung up while a step ran."""


class _ScenarioRun:
    def __init__(
        self,
        scenario: Scenario,
        media: CallerMedia,
        rendered: Mapping[int, np.ndarray],
        settings: RunnerSettings,
        clock: Callable[[], float],
    ) -> None:
        self.scenario = scenario
        self.media = media
        self.rendered = rendered
        self.settings = settings
        self.clock = clock
        self.recording = CallRecording(settings.recording_rate, max_seconds=scenario.max_duration_s + 30.0, clock=clock)
        self.line = CallerLine(media.session, self.recording, settings.send_silence, clock)
        self.watcher = AgentAudioWatcher(media.session, self.recording, settings.analysis, clock)
        self.notes: list[StepNote] = []
        self.last_caller_end: float = 0.0
        self.last_barge_turn = 0  # the agent turn the latest barge_in spoke into

    def ms_now(self) -> float:
        return round(self.recording.ms_of(self.recording.now_sample()), 1)

    def ms_at(self, t: float) -> float:
        return round(self.recording.ms_of(self.recording.sample_at(t)), 1)

    async def run(self) -> tuple[EndedBy, str]:
        self.recording.start()
        self.last_caller_end = self.clock()
        self.recording.mark("call_answered", at_sample=0)
        self.watcher.start()
        self.line.start()
        ended_by: EndedBy = "caller"
        error = ""
        try:
            async with asyncio.timeout(self.scenario.max_duration_s):
                for index, step in enumerate(self.scenario.steps):
                    if await self._step(index, step):
                        break
                else:
                    self.recording.mark("hangup", track="tx", reason="end of scenario")
        except TimeoutError:
            ended_by = "timeout"
            self.recording.mark("hangup", track="tx", reason="max_duration")
        except _Ended:
            ended_by = "agent"
            self.recording.mark("call_ended", reason="remote hang-up")
        except Exception as exc:  # noqa: BLE001 - the call's result reports it; the recording is kept
            ended_by = "error"
            error = repr(exc)
            self.recording.mark("hangup", track="tx", reason="error")
        finally:
            await self.line.stop()
            await self.watcher.stop()
            self.recording.extend_to(self.recording.now_sample())
        return ended_by, error

    async def _guard(self, awaitable):
        """Run a step's wait, ending it early if the far end hangs up."""
        ended = self.media.ended
        if ended is None:
            return await awaitable
        task = asyncio.ensure_future(awaitable)
        hangup = asyncio.ensure_future(ended.wait())
        try:
            await asyncio.wait([task, hangup], return_when=asyncio.FIRST_COMPLETED)
        finally:
            hangup.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise _Ended()
        return task.result()

    def _note(self, index: int, step: Step, status: StepStatus, started_ms: float, label: str = "", detail: str = ""):
        action = str(type(step).__struct_config__.tag)  # the YAML `action`
        self.notes.append(StepNote(index, action, status, started_ms, self.ms_now(), label, detail))

    async def _step(self, index: int, step: Step) -> bool:
        """Run one step; True when the call is over (hang-up)."""
        started_ms = self.ms_now()
        if isinstance(step, Say):
            label = utterance_label(index, step)
            status, detail = await self._guard(self._speak(index, label, None))
            self._note(index, step, status, started_ms, label, detail)
        elif isinstance(step, BargeIn):
            label = utterance_label(index, step)
            status, detail = await self._guard(self._barge_in(index, step, label))
            self._note(index, step, status, started_ms, label, detail)
        elif isinstance(step, WaitAgent):
            status, detail = await self._guard(self._wait_agent(step))
            self._note(index, step, status, started_ms, detail=detail)
        elif isinstance(step, Silence):
            await self._guard(asyncio.sleep(step.ms / 1000.0))
            self._note(index, step, "done", started_ms)
        elif isinstance(step, Dtmf):
            self.recording.mark("dtmf", track="tx", label=step.digits)
            try:
                await self._guard(self.media.session.send_dtmf(
                    step.digits, step.duration_ms, step.interval_ms - step.duration_ms))
                self.last_caller_end = self.clock()  # the caller's turn: a wait for the answer starts here
                self._note(index, step, "done", started_ms, label=step.digits)
            except ValueError as exc:  # the agent's SDP has no telephone-event
                self._note(index, step, "unsupported", started_ms, label=step.digits, detail=str(exc))
        elif isinstance(step, Hangup):
            await self._guard(asyncio.sleep(step.after_ms / 1000.0))
            self.recording.mark("hangup", track="tx")
            self._note(index, step, "done", started_ms)
            return True
        return False

    async def _speak(
        self, index: int, label: str, at: float | None, marker: Literal["barge_in", "backchannel"] | None = None
    ) -> tuple[StepStatus, str]:
        pcm = self.rendered[index]
        sent = await self.line.speak(pcm, at=at, timeout_s=self.settings.send_timeout_s)
        if sent.started_at is None:
            return "cut", "nothing was sent"
        self.recording.mark("utterance_start", at_sample=sent.start_sample, track="tx", label=label)
        if marker is not None:
            self.recording.mark(marker, at_sample=sent.start_sample, track="tx", label=label)
        self.recording.mark("utterance_end", at_sample=sent.end_sample, track="tx", label=label)
        self.last_caller_end = sent.ended_at or self.clock()
        detail = f"{sent.sent_samples / self.recording.sample_rate * 1000:.0f} ms sent"
        if sent.stretches > 1:
            detail += f" in {sent.stretches} stretches (the send clock stalled)"
        if at is not None:
            detail += f"; started {(sent.started_at - at) * 1000:+.0f} ms from the target"
        return ("cut" if sent.cut else "done"), detail

    async def _barge_in(self, index: int, step: BargeIn, label: str) -> tuple[StepStatus, str]:
        watcher = self.watcher
        if step.agent_turn == "same":
            turn_index = self.last_barge_turn or len(watcher.turns) + 1
        else:
            turn_index = step.agent_turn if step.agent_turn is not None else len(watcher.turns) + 1
        deadline = self.clock() + step.timeout_ms / 1000.0
        skipped = 0
        while True:
            turn = watcher.turn(turn_index)
            if turn is not None and (step.min_turn_ms <= 0 or turn.end - turn.start >= step.min_turn_ms / 1000.0):
                break
            if turn is not None and (
                watcher.turn(turn_index + 1) is not None or watcher.heard_until() - turn.end >= watcher.turn_gap_s
            ):
                turn_index += 1  # it ended shorter than min_turn_ms: a filler, not the answer
                skipped += 1
                continue
            remaining = deadline - self.clock()
            if remaining <= 0:
                self.recording.mark("wait_timeout", track="rx", label=label, agent_turn=str(turn_index))
                return "timeout", f"agent turn {turn_index} did not start within {step.timeout_ms} ms"
            await watcher.wait_change(min(remaining, 0.05))
        self.last_barge_turn = turn_index
        target = turn.start + step.after_ms / 1000.0
        marker: Literal["barge_in", "backchannel"] = "barge_in" if step.expect_agent == "stops" else "backchannel"
        late = self.clock() - target
        status, detail = await self._speak(index, label, target, marker)
        detail = f"agent turn {turn_index} at {self.ms_at(turn.start):.0f} ms + {step.after_ms} ms; {detail}"
        if skipped:
            detail += f"; skipped {skipped} shorter turn(s)"
        if late > 0:
            detail += f"; heard the turn {late * 1000:.0f} ms after the target (jitter buffer)"
        if turn.end < target:
            detail += "; the agent's turn had ended before the target"
        return status, detail

    async def _wait_agent(self, step: WaitAgent) -> tuple[StepStatus, str]:
        watcher = self.watcher
        began = self.clock()
        deadline = began + step.timeout_ms / 1000.0
        settle = step.settle_ms / 1000.0
        since = min(self.last_caller_end, began) if step.until == "ends" else began
        while True:
            if step.until == "starts":
                if watcher.spoke_since(since):
                    break
            else:
                end = watcher.last_speech_end
                if (
                    watcher.spoke_since(since)
                    and end is not None
                    and watcher.heard_until() - end >= settle
                    and watcher.speech_since(since) * 1000.0 >= step.min_speech_ms
                ):
                    break
            remaining = deadline - self.clock()
            if remaining <= 0:
                self.recording.mark("wait_timeout", track="rx", until=step.until)
                return "timeout", f"agent audio did not {step.until[:-1]} within {step.timeout_ms} ms"
            await watcher.wait_change(min(remaining, 0.05))
        self.recording.mark("wait_done", track="rx", until=step.until)
        return "done", f"agent turns heard: {len(watcher.turns)}"


async def run_scenario(
    scenario: Scenario,
    media: CallerMedia,
    voice: CallerVoice,
    out_dir: str | Path,
    clock: Callable[[], float] = time.monotonic,
    settings: RunnerSettings = RunnerSettings(),
    rendered: Mapping[int, np.ndarray] | None = None,
    name: str = "",
) -> CallRunResult:
    """Play ``scenario`` on a connected call; write ``<name>.wav``, ``<name>.events.json`` and
    ``<name>.result.json`` into ``out_dir`` (``name`` defaults to the scenario's name)."""
    if media.session.model_rate != settings.recording_rate:
        raise ValueError("the caller's RtpSession must take PCM at the recording rate (model_rate)")
    if rendered is None:
        rendered = await render_utterances(scenario, voice, settings.recording_rate)
    run = _ScenarioRun(scenario, media, rendered, settings, clock)
    ended_by, error = await run.run()

    out = Path(out_dir)
    stem = name or scenario.name
    loop = asyncio.get_running_loop()
    wav_path, events_path = await loop.run_in_executor(None, run.recording.save, out / f"{stem}.wav")
    analysis = await loop.run_in_executor(None, analyse, run.recording, settings.analysis)
    result = CallRunResult(
        scenario=scenario.name,
        wav_path=str(wav_path),
        events_path=str(events_path),
        result_path=str(out / f"{stem}.result.json"),
        ended_by=ended_by,
        duration_ms=round(run.recording.duration_ms, 1),
        codec=media.codec,
        steps=run.notes,
        analysis=analysis,
        media=media.session.stats(),
        agent_audio=msgspec.structs.replace(run.watcher.stats),
        error=error,
        started_at_unix=run.recording.started_at_unix,
    )
    Path(result.result_path).write_bytes(msgspec.json.format(msgspec.json.encode(result), indent=2))
    return result
