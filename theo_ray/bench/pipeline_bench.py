"""`theo bench pipeline`: Theo's streaming turn loop against the sequential (batch) baseline,
in one run, on the same model deployments and the same scenarios, measured at the caller.

Two private call planes share the deployments: one with ``pipeline="sequential"`` (once the
turn has ended: STT of the whole utterance -> the whole LLM reply -> the whole TTS -> play)
and one with ``pipeline="streaming"`` (speculative STT during the endpointing wait, sentences
to TTS and chunks to the line as they come). Both take the same end-of-turn decision and
answer with exactly ``reply_tokens`` tokens (the repetition guard off, so that no reply is
cut short). Fillers are off in both, so the first
agent audio is the reply's. Calls alternate between the planes (sequential first on even
pairs, streaming first on odd ones) so slow drift of a shared machine falls on both alike.

A benchmark, not a test: it prints the figures and the target (ratio <= 0.35).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec

from theo_ray.bench.alternating_calls import alternating_calls
from theo_ray.bench.sim_calls import (
    SegmentFigures,
    SimCall,
    SimCallPlane,
    TurnSample,
    caller_voice,
    questions_scenario,
    segment_figures,
    turn_samples,
    unanswered_steps,
    without_fillers,
)
from theo_ray.bench.turns_bench import QUESTIONS, SCRIPTED_LLM_APP, SCRIPTED_LLM_RULES, deploy_scripted_llm
from theo_ray.config import TheoConfig
from theo_ray.conversation.settings import ConversationSettings
from theo_ray.model_handles import ModelHandles
from theo_ray.sim.percentiles import Percentiles, percentiles
from theo_ray.sim.caller_runner import render_utterances

TARGET_RATIO = 0.35
# Questions the scripted test double answers with its long explanation (its "explica|plano" rule).
LONG_ANSWER_QUESTIONS = (
    "Me explica como funciona o meu plano.",
    "Quais são os planos de internet de vocês?",
    "Me explica a minha conta, por favor.",
    "Como funciona o plano mais barato?",
)
Pipeline = Literal["streaming", "sequential"]


class PipelineBenchSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    calls_per_mode: int = 3
    questions_per_call: int = 4
    # "configured": the config's LLM (the packaged SmolLM2 answers in about one sentence, so
    # the whole reply and its first sentence nearly coincide); "scripted": the scripted
    # language-model TEST DOUBLE through the same deployment path, answering the questions
    # with a four-sentence explanation streamed word by word (a reply worth streaming).
    llm: Literal["configured", "scripted"] = "configured"
    scripted_rules: str = str(SCRIPTED_LLM_RULES)
    # Both modes answer with exactly this many tokens (the LLM request's min_tokens and
    # max_tokens). Streaming gains in proportion to the reply's length, so the comparison needs
    # one fixed length: 80 tokens is a 2-3 sentence contact-centre answer. Left to itself the
    # packaged 135M model mostly echoes the question (one short sentence: nothing to overlap)
    # or loops to max_tokens. 0 = the model decides (up to conversation.llm_max_tokens).
    reply_tokens: int = 80


class PipelineFigures(msgspec.Struct):
    pipeline: Pipeline
    calls: int
    failed_calls: int
    unanswered_steps: int
    first_audio: Percentiles
    reply_tokens: Percentiles  # how long the replies were (the LLM's completion tokens)
    segments: list[SegmentFigures]
    turns: list[TurnSample] = []


class PipelineBenchReport(msgspec.Struct):
    settings: PipelineBenchSettings
    llm: str
    tts: str
    sequential: PipelineFigures
    streaming: PipelineFigures
    # streaming / sequential first-audio latency (None when either side has no figure).
    ratio_p50: float | None
    ratio_p95: float | None
    ratio_mean: float | None
    target_ratio: float = TARGET_RATIO
    wall_s: float = 0.0
    errors: list[str] = []


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _figures(pipeline: Pipeline, calls: list[SimCall]) -> PipelineFigures:
    turns = [t for c in calls for t in turn_samples(c)]
    return PipelineFigures(
        pipeline=pipeline,
        calls=len(calls),
        failed_calls=sum(1 for c in calls if c.error),
        unanswered_steps=sum(unanswered_steps(c) for c in calls),
        first_audio=percentiles([t.first_audio_ms for t in turns]),
        reply_tokens=percentiles([float(t.reply_tokens) for t in turns if t.reply_tokens]),
        segments=segment_figures(turns),
        turns=turns,
    )


def bench_conversation(conversation: ConversationSettings, settings: PipelineBenchSettings) -> ConversationSettings:
    """The conversation settings both planes share: agent mode, no fillers, and with
    ``reply_tokens`` every reply exactly that long."""
    base = without_fillers(msgspec.structs.replace(conversation, mode="agent"))
    if settings.reply_tokens > 0:
        base = msgspec.structs.replace(base, llm_min_tokens=settings.reply_tokens, llm_max_tokens=settings.reply_tokens)
        # Replies of exactly this length in both modes: the repetition guard would cut them
        # wherever the model, forced past its own end by min_tokens, starts repeating itself,
        # and the batch baseline's whole-reply TTS would shrink with them (measured: ratio
        # 0.52 with the guard on, 11 of the 12 baseline replies cut short).
        turn = msgspec.structs.replace(
            base.turn, repetition_guard=msgspec.structs.replace(base.turn.repetition_guard, enabled=False)
        )
        base = msgspec.structs.replace(base, turn=turn)
    return base


async def run_pipeline_bench(
    config: TheoConfig,
    handles: ModelHandles,
    settings: PipelineBenchSettings = PipelineBenchSettings(),
    out_dir: Path = Path("out/bench-pipeline"),
    say: Callable[[str], None] = print,
) -> PipelineBenchReport:
    """Place ``calls_per_mode`` calls on each pipeline, alternating. Ray must be initialised."""
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    base = bench_conversation(config.conversation, settings)
    questions = LONG_ANSWER_QUESTIONS if settings.llm == "scripted" else QUESTIONS
    scenarios = [
        questions_scenario(
            f"bench_pipeline_{i + 1}",
            [questions[(i * settings.questions_per_call + k) % len(questions)]
             for k in range(settings.questions_per_call)],
            # A sequential reply starts after the whole TTS and then plays in full: the caller
            # waits for its end (80 tokens are ~20 s of speech) before the next question.
            reply_timeout_ms=90000,
        )
        for i in range(settings.calls_per_mode)
    ]
    llm = f"{config.llm.backend} {config.llm.model}"
    if settings.llm == "scripted":
        handles = ModelHandles(stt=handles.stt, llm=deploy_scripted_llm(config, settings.scripted_rules),
                               tts=handles.tts)
        llm = f"scripted test double ({Path(settings.scripted_rules).name})"
    voice = caller_voice(config)
    say("rendering the caller's utterances (cached after the first run) ...")
    for scenario in scenarios:
        await render_utterances(scenario, voice)

    planes = {
        mode: SimCallPlane(config, msgspec.structs.replace(base, pipeline=mode), handles, mode, warm_pool_size=1)
        for mode in ("sequential", "streaming")
    }
    calls = await alternating_calls(planes, scenarios, voice, out_dir, say, label="",
                                    scripted_app=SCRIPTED_LLM_APP if settings.llm == "scripted" else "")

    sequential, streaming = _figures("sequential", calls["sequential"]), _figures("streaming", calls["streaming"])
    s, q = streaming.first_audio, sequential.first_audio
    return PipelineBenchReport(
        settings=settings,
        llm=llm,
        tts=f"{config.tts.backend} {config.tts.voice}",
        sequential=sequential,
        streaming=streaming,
        ratio_p50=_ratio(s.p50, q.p50),
        ratio_p95=_ratio(s.p95, q.p95),
        ratio_mean=_ratio(s.mean, q.mean),
        wall_s=round(time.monotonic() - started, 1),
        errors=[f"{c.session_id}: {c.error}" for mode in calls.values() for c in mode if c.error],
    )
