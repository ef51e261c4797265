"""`theo bench turns`: where a turn's time goes, measured where the caller is.

Two sets of trials, each over simulated SIP calls into a private call plane running Theo's
streaming turn loop (fillers off, so the first agent audio is the reply's):

- **turns**: calls of a few questions each; per answered question, end of caller speech ->
  first agent audio from the caller's recording, split by segment from the CallActor's
  TurnRecord (endpointing wait, STT final, LLM first token/sentence, TTS first chunk, first
  RTP), and Theo's own overhead = first audio - endpointing wait - model compute on the
  critical path (STT final compute + LLM to first sentence + TTS first chunk);
- **barge-ins**: calls where the caller talks over a long answer ``after_ms`` into it; per
  interruption, caller speech onset -> agent audio stops, from the recording.

The barge-in calls use the scripted language-model TEST DOUBLE by default (same deployment
path, a guaranteed long answer for the "explica" question), since SmolLM2 may answer in one
short sentence that ends before the caller cuts in; ``barge_in_llm="same"`` uses the real one.

A benchmark, not a test: it prints figures next to their targets and asserts nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec

from theo_ray.bench.sim_calls import (
    BargeInSample,
    SegmentFigures,
    SimCall,
    SimCallPlane,
    TurnSample,
    barge_in_samples,
    barge_in_scenario,
    caller_voice,
    place_call,
    questions_scenario,
    segment_figures,
    turn_samples,
    unanswered_steps,
    without_fillers,
)
from theo_ray.config import TheoConfig
from theo_ray.model_handles import ModelHandles
from theo_ray.sim.percentiles import Percentiles, percentiles
from theo_ray.sim.caller_runner import render_utterances

TARGET_BARGE_IN_P95_MS = 100.0
TARGET_OVERHEAD_MS = 30.0
SCRIPTED_LLM_APP = "theo-llm-scripted-bench"
SCRIPTED_LLM_RULES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "scripted_llm.toml"

QUESTIONS = (
    "Oi, bom dia. Qual é o horário de atendimento de vocês?",
    "Eu quero saber da minha fatura.",
    "Como eu faço para tirar a segunda via do boleto?",
    "Vocês atendem no sábado?",
    "Quero atualizar meu cadastro.",
    "Qual é o valor da mensalidade?",
    "Meu pagamento já foi confirmado?",
)
LONG_ANSWER_QUESTION = "Me explica todos os planos de internet que vocês têm, com os preços."
INTERRUPTION = "Espera, espera. Eu só quero saber o mais barato."


class TurnsBenchSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    trials: int = 20  # of each kind (answered turns; interruptions)
    turns_per_call: int = 5
    barge_ins_per_call: int = 5
    barge_in_after_ms: int = 800
    fillers: bool = False
    barge_in_llm: Literal["scripted", "same"] = "scripted"
    scripted_rules: str = str(SCRIPTED_LLM_RULES)


class TurnsBenchReport(msgspec.Struct):
    settings: TurnsBenchSettings
    llm: str  # backend and model of the turn trials
    barge_in_llm: str
    calls: int
    failed_calls: int
    unanswered_steps: int
    turn_trials: int
    turns_matched: int  # with a CallActor TurnRecord
    turns_with_filler: int
    first_audio: Percentiles
    segments: list[SegmentFigures]
    barge_in_trials: int
    barge_ins_yielded: int
    barge_in_reaction: Percentiles
    barge_in_actor_pause: Percentiles  # inside the CallActor: onset -> playout paused
    barge_in_to_pause: Percentiles  # caller onset -> CallActor paused playout
    barge_in_pause_to_silence: Percentiles  # paused -> agent audio stops at the caller
    target_barge_in_p95_ms: float = TARGET_BARGE_IN_P95_MS
    target_overhead_ms: float = TARGET_OVERHEAD_MS
    wall_s: float = 0.0
    errors: list[str] = []
    turns: list[TurnSample] = []
    barge_ins: list[BargeInSample] = []

    def segment(self, name: str) -> Percentiles:
        return next(s.figures for s in self.segments if s.name == name)


def deploy_scripted_llm(config: TheoConfig, rules: str) -> object:
    """The LanguageModel deployment with the scripted TEST DOUBLE backend, as its own app."""
    from theo_ray.runtime.serve_apps import deploy_scripted_model

    return deploy_scripted_model(config, rules, SCRIPTED_LLM_APP)


async def run_turns_bench(
    config: TheoConfig,
    handles: ModelHandles,
    settings: TurnsBenchSettings = TurnsBenchSettings(),
    out_dir: Path = Path("out/bench-turns"),
    say: Callable[[str], None] = print,
) -> TurnsBenchReport:
    """Place the trial calls one at a time and gather the figures. Ray must be initialised."""
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    conversation = msgspec.structs.replace(config.conversation, pipeline="streaming", mode="agent")
    if not settings.fillers:
        conversation = without_fillers(conversation)

    turn_calls = math.ceil(settings.trials / settings.turns_per_call)
    turn_scenarios = [
        questions_scenario(
            f"bench_turns_{i + 1}",
            [QUESTIONS[(i * settings.turns_per_call + k) % len(QUESTIONS)] for k in range(settings.turns_per_call)],
        )
        for i in range(turn_calls)
    ]
    barge_calls = math.ceil(settings.trials / settings.barge_ins_per_call)
    barge_scenario = barge_in_scenario(
        "bench_barge_in", LONG_ANSWER_QUESTION, INTERRUPTION, settings.barge_ins_per_call, settings.barge_in_after_ms
    )
    voice = caller_voice(config)
    say("rendering the caller's utterances (cached after the first run) ...")
    for scenario in [*turn_scenarios, barge_scenario]:
        await render_utterances(scenario, voice)

    barge_handles = handles
    barge_llm = f"{config.llm.backend} {config.llm.model}"
    if settings.barge_in_llm == "scripted":
        barge_handles = ModelHandles(stt=handles.stt, llm=deploy_scripted_llm(config, settings.scripted_rules),
                                     tts=handles.tts)
        barge_llm = f"scripted test double ({Path(settings.scripted_rules).name})"

    calls: list[SimCall] = []
    tag = time.strftime("%H%M%S")
    try:
        async with SimCallPlane(config, conversation, handles, "turns", warm_pool_size=1) as plane:
            for i, scenario in enumerate(turn_scenarios):
                say(f"turn call {i + 1}/{turn_calls} ({settings.turns_per_call} questions) ...")
                call = await place_call(plane, scenario, voice, out_dir, f"turns-{tag}-{i + 1}")
                _say_call(call, say)
                calls.append(call)
        async with SimCallPlane(config, conversation, barge_handles, "bargein", warm_pool_size=1) as plane:
            for i in range(barge_calls):
                say(f"barge-in call {i + 1}/{barge_calls} ({settings.barge_ins_per_call} interruptions) ...")
                call = await place_call(plane, barge_scenario, voice, out_dir, f"bargein-{tag}-{i + 1}")
                _say_call(call, say)
                calls.append(call)
    finally:
        if settings.barge_in_llm == "scripted":
            from ray import serve

            serve.delete(SCRIPTED_LLM_APP)

    turn_calls_done = [c for c in calls if c.plane == "turns"]
    barge_calls_done = [c for c in calls if c.plane == "bargein"]
    turns = [t for c in turn_calls_done for t in turn_samples(c)]
    barges = [b for c in barge_calls_done for b in barge_in_samples(c)]
    clean = [t for t in turns if not t.filler_played]
    return TurnsBenchReport(
        settings=settings,
        llm=f"{config.llm.backend} {config.llm.model}",
        barge_in_llm=barge_llm,
        calls=len(calls),
        failed_calls=sum(1 for c in calls if c.error),
        unanswered_steps=sum(unanswered_steps(c) for c in calls),
        turn_trials=len(turns),
        turns_matched=sum(1 for t in turns if t.matched),
        turns_with_filler=len(turns) - len(clean),
        first_audio=percentiles([t.first_audio_ms for t in turns]),
        segments=segment_figures(turns),
        barge_in_trials=len(barges),
        barge_ins_yielded=sum(1 for b in barges if b.yielded),
        barge_in_reaction=percentiles([b.reaction_ms for b in barges]),
        barge_in_actor_pause=percentiles([b.actor_pause_ms for b in barges]),
        barge_in_to_pause=percentiles([b.to_pause_ms for b in barges]),
        barge_in_pause_to_silence=percentiles([b.pause_to_silence_ms for b in barges]),
        wall_s=round(time.monotonic() - started, 1),
        errors=[f"{c.session_id}: {c.error}" for c in calls if c.error],
        turns=turns,
        barge_ins=barges,
    )


def _say_call(call: SimCall, say: Callable[[str], None]) -> None:
    if call.run is None:
        say(f"  [red]failed[/red]: {call.error}")
        return
    lat = [f"{t.first_audio_ms:.0f}" for t in turn_samples(call)]
    barge = [f"{b.reaction_ms:.0f}" if b.reaction_ms is not None else "talked on" for b in barge_in_samples(call)]
    detail = f"first audio ms {lat}" if call.plane == "turns" else f"barge-in reaction ms {barge}"
    say(f"  {call.run.ended_by}, {call.run.duration_ms / 1000:.0f} s; {detail}; "
        f"{unanswered_steps(call)} step(s) timed out")
