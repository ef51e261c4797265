"""FakeCall: a TurnLoop on a FakeLine with ScriptedModels, an EnergyVad and a synthetic
phrase book, run in virtual time — one call of the turn machine in milliseconds, no Ray.

Test double for the CallActor's wiring (tests/conversation runs the real one).
"""

from __future__ import annotations

import asyncio
import random

import msgspec
import numpy as np

from theo_ray.conversation.call_control import ControlOutcome
from theo_ray.conversation.phrase_book import PhraseBook, PrerenderedPhrase
from theo_ray.conversation.records import CallRecord
from theo_ray.conversation.settings import ConversationSettings
from theo_ray.conversation.turn_loop import TurnLoop
from theo_ray.turn.fillers import BACKCHANNELS, EMERGENCY_PHRASES, THINKING_FILLERS
from tests.fakes.fake_line import FakeLine
from tests.fakes.fake_vad import EnergyVad
from tests.fakes.scripted_caller import RATE, Line, ScriptedCaller
from tests.fakes.scripted_models import Rule, ScriptedModels


class ControlCall(msgspec.Struct, frozen=True):
    action: str
    argument: str
    reason: str
    at: float  # offset from the call's start


class RecordingControl:
    """CallControl that records what the turn loop asked for (and says it worked)."""

    def __init__(self, t0, transfer_ok: bool = True) -> None:
        self.calls: list[ControlCall] = []
        self._t0 = t0
        self.transfer_ok = transfer_ok

    async def transfer(self, destination: str, reason: str) -> ControlOutcome:
        self.calls.append(ControlCall("transfer", destination, reason, asyncio.get_running_loop().time() - self._t0()))
        return ControlOutcome(ok=self.transfer_ok, action="transfer", detail="recorded")

    async def hangup(self, reason: str) -> ControlOutcome:
        self.calls.append(ControlCall("hangup", "", reason, asyncio.get_running_loop().time() - self._t0()))
        return ControlOutcome(ok=True, action="hangup", detail="recorded")


def _tone(text: str, hz: float, ms_per_char: float = 50.0) -> PrerenderedPhrase:
    n = int(len(text) * ms_per_char * RATE / 1000)
    pcm = (1500 * np.sin(2 * np.pi * hz * np.arange(n) / RATE)).astype("<i2")
    return PrerenderedPhrase(text=text, pcm=pcm.tobytes(), sample_rate=RATE)


def synthetic_phrase_book(greeting: str = "Olá! Aqui é a Theo.") -> PhraseBook:
    return PhraseBook(
        voice="test-tone", sample_rate=RATE, greeting=_tone(greeting, 330.0) if greeting else None,
        fillers=[_tone(t, 550.0) for t in THINKING_FILLERS], backchannels=[_tone(t, 660.0) for t in BACKCHANNELS],
        emergency={k: _tone(t, 770.0) for k, t in EMERGENCY_PHRASES.items()},
    )


class FakeCallResult(msgspec.Struct):
    record: CallRecord
    line: FakeLine
    models: ScriptedModels
    control: RecordingControl
    states: list[tuple[float, str]]  # (offset s, state) as the turn machine announced them


async def fake_call(
    lines: list[Line],
    rules: list[Rule],
    seconds: float,
    settings: ConversationSettings | None = None,
    echo: tuple[float, float] | None = None,
    greeting: str = "Olá! Aqui é a Theo.",
    packets_stop_at_s: float | None = None,
    transfer_ok: bool = True,
    keys: list[tuple[float, str]] | None = None,  # (offset s, DTMF keys) the caller types
    **model_options,
) -> FakeCallResult:
    caller = ScriptedCaller(lines)
    line = FakeLine(caller, echo=echo)
    line.stop_after_s = packets_stop_at_s
    line.presses = sorted(keys or [])
    models = ScriptedModels(caller, rules, **model_options)
    settings = settings or ConversationSettings()
    line.start()
    control = RecordingControl(lambda: line.t0, transfer_ok)
    loop = TurnLoop(
        "fake-call", line, models, settings, control, phrases=synthetic_phrase_book(greeting),
        vad=EnergyVad(settings.turn.vad), rng=random.Random(3), clock=asyncio.get_running_loop().time,
    )
    states: list[tuple[float, str]] = []
    subscribe = getattr(loop, "subscribe_states", None)
    if subscribe is not None:
        subscribe(lambda change: states.append((change.at - line.t0, change.state)))
    await loop.run()
    await asyncio.sleep(seconds)
    record = await loop.stop("test over")
    await line.close()
    return FakeCallResult(record=record, line=line, models=models, control=control, states=states)
