"""Conversation quality of one call (GAP 16) and the scenario's checks, as a CallSummary.

Inputs are what the caller side observed: the :class:`CallAnalysis` of the recording, the words
of each turn (the caller's from the scenario or STT, the agent's from STT), and the call's outcome
(how it ended, transfer and its reason, as reported by the SIP side / the agent's tool call).
Sentiment per caller turn comes from an injected async classifier (the lead wires a short LLM
classification request, off the call's critical path); a failing classifier leaves that turn's
sentiment empty and is counted, it never fails the summary.

The summary's structs (the JSON schema notebooks read) sit beside the functions that fill
them, so a field and its computation change together. How the call ended and whether the
task was completed is :mod:`theo_ray.sim.call_outcome`; the scenario's checks are
:mod:`theo_ray.sim.scenario_expectations`.
"""

from __future__ import annotations

import asyncio
import difflib
import re
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Literal

import msgspec

from theo_ray.sim.analysis import CallAnalysis, dead_air_over
from theo_ray.sim.call_outcome import CallOutcome, task_completion
from theo_ray.sim.percentiles import Percentiles, percentiles
from theo_ray.sim.turn_transcripts import TurnText
from theo_ray.sim.intelligibility import Intelligibility
from theo_ray.sim.scenario import Scenario
from theo_ray.sim.scenario_expectations import ExpectationResult, check_expectations

# ---------------------------------------------------------------- inputs


class ConversationLine(msgspec.Struct, frozen=True):
    speaker: Literal["caller", "agent"]
    text: str


class SentimentRequest(msgspec.Struct, frozen=True):
    """Classify the caller's sentiment in one turn, given the conversation before it."""

    call_id: str
    turn_index: int
    caller_text: str
    context: list[ConversationLine] = []


class SentimentScore(msgspec.Struct, frozen=True):
    """``score`` in [-1, 1]: -1 angry/frustrated, 0 neutral, 1 pleased."""

    label: Literal["negative", "neutral", "positive"]
    score: float


SentimentClassifier = Callable[[SentimentRequest], Awaitable[SentimentScore]]


class MetricsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Consecutive caller turns at least this similar (token-set ratio, 0..1) are a repeat.
    repeat_similarity: float = 0.8
    # ...and must share at least this many content words (so "a de janeiro" after
    # "quero a fatura de janeiro" is not a repeat).
    repeat_min_shared_words: int = 2
    long_silence_ms: int = 2000
    sentiment_timeout_s: float = 10.0


# ---------------------------------------------------------------- outputs


class RepeatPair(msgspec.Struct, frozen=True):
    turn: int
    previous_turn: int
    similarity: float


class TurnRecord(msgspec.Struct, frozen=True):
    """One caller turn and the agent's reply to it."""

    index: int
    kind: Literal["turn", "barge_in", "backchannel"]
    caller_text: str
    agent_text: str
    caller_start_ms: float
    caller_end_ms: float
    first_audio_ms: float | None = None  # any sound of the agent: a filler counts
    first_content_audio_ms: float | None = None  # the reply's own first words
    # This turn started while the agent spoke; did the agent stop, and how fast.
    spoke_over_agent: bool = False
    agent_yielded: bool | None = None
    barge_in_reaction_ms: float | None = None
    long_silence: bool = False
    repeat_of: int | None = None
    sentiment: SentimentScore | None = None
    label: str = ""


class CallSummary(msgspec.Struct, frozen=True):
    call_id: str
    scenario: str
    duration_ms: float
    outcome: CallOutcome
    greeting_text: str
    turns: list[TurnRecord]
    agent_turns: list[TurnText]
    task_completed: bool
    completion_reason: str
    transfer_reason: str
    turns_to_resolution: int | None
    barge_in_count: int
    barge_in_rate: float
    repeats: list[RepeatPair]
    repeat_rate: float
    # Dead air (`analysis.dead_air_over`): silences > long_silence_ms that were not the
    # caller's own pause before answering.
    long_silence_count: int
    long_silence_before_first_turn: bool
    silence_over_2s_rate: float
    sentiment_trajectory: list[float | None]
    sentiment_failures: int
    first_audio: Percentiles
    barge_in_reaction: Percentiles
    overlap_ms: float
    expectations: list[ExpectationResult]
    passed: bool
    started_at_unix: float = 0.0
    # Why a turn has no sentiment (one line per failure), so "?" is never unexplained.
    sentiment_errors: list[str] = []
    # Filled by the simulator from Theo's call record (the caller side cannot tell a filler
    # from the reply, nor knows what the agent meant to say).
    first_content_audio: Percentiles = Percentiles(count=0)
    intelligibility: Intelligibility | None = None


# ---------------------------------------------------------------- repeat detection


def _words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return re.findall(r"[a-z0-9]+", folded)


def token_set_ratio(a: str, b: str) -> float:
    """Similarity 0..1 of two texts ignoring word order and repeated words.

    The token-set ratio (as popularised by fuzzywuzzy), written on difflib to avoid a dependency
    for twenty lines: compare the shared words with each side's full word set, keep the best.
    """
    set_a, set_b = set(_words(a)), set(_words(b))
    if not set_a or not set_b:
        return 0.0
    shared = " ".join(sorted(set_a & set_b))
    full_a = " ".join([shared, *sorted(set_a - set_b)]).strip()
    full_b = " ".join([shared, *sorted(set_b - set_a)]).strip()
    pairs = [(full_a, full_b)] + ([(shared, full_a), (shared, full_b)] if shared else [])
    return max(difflib.SequenceMatcher(None, x, y).ratio() for x, y in pairs)


def _content_words(text: str) -> set[str]:
    # Portuguese function words are mostly 1-2 letters (a, o, de, da, em, um); digits always count.
    return {w for w in _words(text) if len(w) >= 3 or w.isdigit()}


def find_repeats(texts: list[tuple[int, str]], settings: MetricsSettings = MetricsSettings()) -> list[RepeatPair]:
    """Consecutive (turn index, caller text) pairs where the caller said the same thing again."""
    out: list[RepeatPair] = []
    for (prev_i, prev), (i, cur) in zip(texts, texts[1:]):
        shared = _content_words(prev) & _content_words(cur)
        if len(shared) < settings.repeat_min_shared_words:
            continue
        similarity = token_set_ratio(prev, cur)
        if similarity >= settings.repeat_similarity:
            out.append(RepeatPair(turn=i, previous_turn=prev_i, similarity=round(similarity, 3)))
    return out


# ---------------------------------------------------------------- the summary


def caller_texts_from_scenario(analysis: CallAnalysis, scenario: Scenario) -> dict[int, str]:
    """Caller turn index -> the text the scenario spoke, matched by utterance label."""
    by_label = {label: utt.spoken_text() for label, utt in scenario.labelled_utterances()}
    return {t.index: by_label[t.label] for t in analysis.caller_turns if t.label in by_label}


async def summarise_call(
    call_id: str,
    analysis: CallAnalysis,
    outcome: CallOutcome,
    caller_texts: Mapping[int, str],
    agent_texts: list[TurnText],
    scenario: Scenario | None = None,
    classify_sentiment: SentimentClassifier | None = None,
    settings: MetricsSettings = MetricsSettings(),
    started_at_unix: float = 0.0,
) -> CallSummary:
    """Compute the GAP 16 metrics of one call and check the scenario's expectations."""
    agent_by_index = {t.index: t.text for t in agent_texts}
    replies: dict[int, list[str]] = {}
    for turn in analysis.agent_turns:
        replies.setdefault(turn.after_caller_turn, []).append(agent_by_index.get(turn.index, ""))
    barge_by_turn = {b.caller_turn: b for b in analysis.barge_ins}
    latency_by_turn = {lat.caller_turn: lat.first_audio_ms for lat in analysis.latencies}

    answered = [t for t in analysis.caller_turns if t.kind != "backchannel"]
    repeats = find_repeats([(t.index, caller_texts.get(t.index, "")) for t in answered], settings)
    repeat_of = {r.turn: r.previous_turn for r in repeats}

    silences = dead_air_over(analysis, settings.long_silence_ms)
    first_start = analysis.caller_turns[0].start_ms if analysis.caller_turns else analysis.call_end_ms
    windows = [
        (t.index, t.start_ms, nxt.start_ms if nxt else analysis.call_end_ms)
        for t, nxt in zip(analysis.caller_turns, [*analysis.caller_turns[1:], None])
    ]
    turns_with_silence = {i for i, lo, hi in windows for s in silences if lo <= s.start_ms < hi}

    sentiments, sentiment_errors = await _sentiments(
        call_id, analysis, caller_texts, replies, classify_sentiment, settings
    )

    turns: list[TurnRecord] = []
    for t in analysis.caller_turns:
        barge = barge_by_turn.get(t.index)
        turns.append(
            TurnRecord(
                index=t.index,
                kind=t.kind,
                caller_text=caller_texts.get(t.index, ""),
                agent_text=" ".join(x for x in replies.get(t.index, []) if x),
                caller_start_ms=t.start_ms,
                caller_end_ms=t.end_ms,
                first_audio_ms=latency_by_turn.get(t.index),
                spoke_over_agent=barge is not None,
                agent_yielded=barge.agent_yielded if barge else None,
                barge_in_reaction_ms=barge.reaction_ms if barge else None,
                long_silence=t.index in turns_with_silence,
                repeat_of=repeat_of.get(t.index),
                sentiment=sentiments.get(t.index),
                label=t.label,
            )
        )

    interruptions = [b for b in analysis.barge_ins if b.agent_yielded]
    completed, reason = task_completion(outcome)
    expectations = check_expectations(scenario, analysis, outcome, agent_texts) if scenario else []
    return CallSummary(
        call_id=call_id,
        scenario=scenario.name if scenario else "",
        duration_ms=round(analysis.call_end_ms - analysis.call_start_ms, 1),
        outcome=outcome,
        greeting_text=" ".join(x for x in replies.get(0, []) if x),
        turns=turns,
        agent_turns=agent_texts,
        task_completed=completed,
        completion_reason=reason,
        transfer_reason=outcome.transfer_reason if outcome.transferred else "",
        turns_to_resolution=len(answered) if completed else None,
        barge_in_count=len(interruptions),
        barge_in_rate=_rate(len({b.agent_turn for b in interruptions}), len(analysis.agent_turns)),
        repeats=repeats,
        repeat_rate=_rate(len(repeats), len(answered) - 1),
        long_silence_count=len(silences),
        long_silence_before_first_turn=any(s.start_ms < first_start for s in silences),
        silence_over_2s_rate=_rate(len(turns_with_silence), len(analysis.caller_turns)),
        sentiment_trajectory=[sentiments[t.index].score if t.index in sentiments else None for t in answered],
        sentiment_failures=len(sentiment_errors),
        sentiment_errors=sentiment_errors,
        first_audio=percentiles([lat.first_audio_ms for lat in analysis.latencies]),
        barge_in_reaction=percentiles([b.reaction_ms for b in interruptions]),
        overlap_ms=analysis.overlap_ms,
        expectations=expectations,
        passed=all(e.passed for e in expectations),
        started_at_unix=started_at_unix,
    )


def _rate(count: int, total: int) -> float:
    return round(count / total, 3) if total > 0 else 0.0


async def _sentiments(
    call_id: str,
    analysis: CallAnalysis,
    caller_texts: Mapping[int, str],
    replies: dict[int, list[str]],
    classify: SentimentClassifier | None,
    settings: MetricsSettings,
) -> tuple[dict[int, SentimentScore], list[str]]:
    if classify is None:
        return {}, ["no sentiment classifier was given to this summary"]
    context: list[ConversationLine] = [ConversationLine("agent", x) for x in replies.get(0, []) if x]
    requests: list[SentimentRequest] = []
    for t in analysis.caller_turns:
        text = caller_texts.get(t.index, "")
        if t.kind != "backchannel" and text:
            requests.append(SentimentRequest(call_id, t.index, text, list(context)))
        context.append(ConversationLine("caller", text))
        context.extend(ConversationLine("agent", x) for x in replies.get(t.index, []) if x)

    # One at a time: an embedded model serves one request at a time, and requests queued
    # together would spend each other's timeout.
    scores: dict[int, SentimentScore] = {}
    errors: list[str] = []
    for req in requests:
        try:
            scores[req.turn_index] = await asyncio.wait_for(classify(req), settings.sentiment_timeout_s)
        except TimeoutError:
            errors.append(f"turn {req.turn_index}: no answer within {settings.sentiment_timeout_s:.0f} s")
        except Exception as exc:  # noqa: BLE001 - any classifier failure is counted, never fatal
            errors.append(f"turn {req.turn_index}: {type(exc).__name__}: {exc}")
    return scores, errors


# ---------------------------------------------------------------- files


def write_summary(summary: CallSummary, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(summary), indent=2))
    return path


def read_summary(path: str | Path) -> CallSummary:
    return msgspec.json.decode(Path(path).read_bytes(), type=CallSummary)
