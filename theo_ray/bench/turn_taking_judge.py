"""Judging one simulated call of the turn-taking corpus, and summing the judgements up.

Pure functions on what the caller recorded (a :class:`CallAnalysis`: the caller's and the
agent's speech regions, caller turns labelled by the scenario, barge-in measures) and, where
it matched, what the CallActor recorded (its :class:`CallRecord`: end-of-turn instants and
barge-in verdicts, on the same CLOCK_MONOTONIC; ``origin`` is the recording's sample 0 on
that clock). `theo bench turn-taking` runs the calls; tests/bench/test_turn_taking_judge.py
feeds these functions synthetic analyses.

What counts as what (the scenario's steps are the labels):

- **false cut-off**: a caller ``say`` turn (speech, not a noise WAV) inside which agent
  audio *starts*: after the turn's first caller sound and more than ``tail_guard_ms`` before
  its last. The agent's own "uhum" in a pause of a long caller turn is allowed (counted
  apart): agent audio no longer than ``agent_ack_max_ms``, starting at least
  ``agent_ack_after_ms`` into the caller's turn (the agent says one only after
  `conversation.backchannel_after_speech_ms` of caller speech), with no end of turn recorded
  before it. Anything else is the agent taking the turn: a reply, or a filler after an end
  of turn decided mid-sentence (the CallActor keeps no TurnRecord of a reply it dropped
  because the caller went on, so the caller-side timing is what tells a filler apart).
- **endpoint wait**: the CallActor's own VAD speech end -> its end-of-turn decision, for the
  end of turn that follows each caller turn (not a premature one).
- **false barge-in**: a ``barge_in`` with ``expect_agent: continues`` (a backchannel or a
  noise burst) over agent audio after which the agent abandoned its answer: its verdict was
  "interruption", or its audio stopped and did not come back within ``resume_window_ms``.
  A pause and a resume of the same answer is allowed (its length is reported). Also any
  interruption verdict with no caller sound near it (``phantom``: its own echo).
- **missed barge-in**: a ``barge_in`` with ``expect_agent: stops``, or a ``say`` that starts
  over agent audio (the caller taking the floor, e.g. a correction in the thinking gap), after
  which the agent did not yield at the caller (its audio stopped within ``max_reaction_ms`` of
  the caller's onset and stayed off until ``resume_gap_ms`` after the caller's last sound), or
  that the CallActor dismissed as a backchannel or noise. Reaction = caller onset -> agent
  audio stops, at the caller; the onset is when the utterance started to go out.
- **dead air**: a stretch of mutual silence longer than ``dead_air_ms`` (the configured
  reprompt delay plus a grace), whoever owed the next word.
- **noise answered**: a ``say`` of WAV noise only that the CallActor ended a turn on within
  ``answer_window_ms`` (without its record: agent audio starting in that window).
- **expected answers**: the scenario's ``expect.agent_says`` patterns (any turn) found in what
  the agent said (record), and its ``must_not_say`` label not found in what the caller heard.
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from theo_ray.conversation.records import CallRecord, TurnRecord
from theo_ray.sim.analysis import CallAnalysis, Interval, silences_over
from theo_ray.sim.speech_regions import SpeechRegion
from theo_ray.sim.scenario import BargeIn, Say, Scenario, utterance_label


class JudgeSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    dead_air_ms: float = 7000.0
    agent_ack_max_ms: float = 1000.0
    agent_ack_after_ms: float = 6000.0  # conversation.backchannel_after_speech_ms (0: no "uhum" is said)
    tail_guard_ms: float = 100.0
    resume_window_ms: float = 2000.0
    answer_window_ms: float = 4000.0
    match_window_ms: float = 1000.0  # caller onset <-> a CallActor barge-in record
    agent_turn_gap_ms: float = 700.0  # agent regions closer than this are one agent turn (analysis)
    # The agent yielded if its audio stopped within max_reaction_ms of the caller's onset and
    # stayed off until resume_gap_ms after the caller stopped (as the analysis judges it).
    max_reaction_ms: float = 1500.0
    resume_gap_ms: float = 300.0
    phantom_margin_ms: float = 500.0  # an interruption verdict this far from any caller sound


class TurnJudgement(msgspec.Struct):
    """One caller ``say`` turn."""

    label: str
    start_ms: float
    end_ms: float
    noise_only: bool = False
    cut_off: bool = False
    cut_at_ms: float | None = None  # where the agent audio that cut in started
    cut_in_ms: float | None = None  # and how long it lasted (a filler flushed as the caller went on: ~100 ms)
    agent_acks: int = 0
    endpoint_wait_ms: float | None = None
    endpoint_rule: str = ""
    noise_answered: bool = False


BargeKind = Literal["backchannel", "interruption", "floor"]


class BargeJudgement(msgspec.Struct):
    """Caller sound over agent audio: a backchannel or noise burst (must not stop the
    agent), an interruption, or a ``say`` that took the floor (must stop it)."""

    label: str
    kind: BargeKind
    onset_ms: float
    agent_yielded: bool
    verdict: str = ""  # the CallActor's: interruption | backchannel | noise | unconfirmed | "" (none matched)
    stopped: bool = False  # the agent abandoned its answer (wanted for interruption/floor)
    reaction_ms: float | None = None
    pause_ms: float | None = None  # a backchannel: how long the agent's audio paused before it resumed


class CallJudgement(msgspec.Struct):
    scenario: str
    category: str
    voice: str = ""
    line: str = "clean"
    session_id: str = ""
    error: str = ""
    origin: float = 0.0  # the recording's sample 0 on the CallActor's monotonic clock (to judge again)
    turns: list[TurnJudgement] = []
    barges: list[BargeJudgement] = []
    # barge_in steps that found the agent silent (its answer was over or paused): not judged.
    not_over_agent: int = 0
    phantom_stops: int = 0
    dead_air: list[Interval] = []
    longest_silence_ms: float = 0.0
    silence_prompts: int | None = None
    # How much longer than written the caller's utterances took to go out, in all (the
    # simulator's event loop stalled on a busy machine: its pauses grew, words were chopped).
    # Measured, not corrected.
    caller_stall_ms: float = 0.0
    expected_total: int = 0
    expected_ok: int = 0
    unexpected: list[str] = []  # patterns that failed (agent_says missing, must_not_say heard)


def _mono_ms(at: float, origin: float) -> float:
    return (at - origin) * 1000.0


def _noise_only_labels(scenario: Scenario) -> set[str]:
    out = set()
    for i, step in enumerate(scenario.steps):
        if isinstance(step, Say) and not step.spoken_text():
            out.add(utterance_label(i, step))
    return out


def _eots_ms(record: CallRecord | None, origin: float) -> list[tuple[float, TurnRecord]]:
    if record is None:
        return []
    return sorted(((_mono_ms(t.end_of_turn_at, origin), t) for t in record.turns if t.end_of_turn_at),
                  key=lambda pair: pair[0])


def judge_turns(
    scenario: Scenario, analysis: CallAnalysis, record: CallRecord | None, origin: float, settings: JudgeSettings
) -> list[TurnJudgement]:
    noise = _noise_only_labels(scenario)
    eots = _eots_ms(record, origin)
    says = [t for t in analysis.caller_turns if t.kind == "turn"]
    out: list[TurnJudgement] = []
    for k, turn in enumerate(says):
        j = TurnJudgement(turn.label, turn.start_ms, turn.end_ms, noise_only=turn.label in noise)
        inner_end = turn.end_ms - settings.tail_guard_ms
        premature = [at for at, _ in eots if turn.start_ms < at < inner_end]
        for region in analysis.agent_regions:
            if not turn.start_ms < region.start_ms < inner_end:
                continue
            took_turn = any(at <= region.start_ms for at in premature)
            ack = (
                settings.agent_ack_after_ms > 0
                and region.duration_ms <= settings.agent_ack_max_ms
                and region.start_ms - turn.start_ms >= settings.agent_ack_after_ms
            )
            if ack and not took_turn:
                j.agent_acks += 1
            elif not j.cut_off:
                j.cut_off, j.cut_at_ms, j.cut_in_ms = True, region.start_ms, round(region.duration_ms, 1)
        if j.noise_only:
            j.cut_off = False  # nothing to cut: a knock is not a turn
            limit = turn.end_ms + settings.answer_window_ms
            later = [t.start_ms for t in analysis.caller_turns if t.start_ms > turn.start_ms]
            limit = min([limit, *later])
            if record is not None:  # the CallActor ended a turn on it (a reprompt for silence is no answer)
                j.noise_answered = any(turn.start_ms <= at < limit for at, _ in eots)
            else:
                j.noise_answered = any(turn.end_ms <= r.start_ms < limit for r in analysis.agent_regions)
        else:
            next_start = says[k + 1].start_ms if k + 1 < len(says) else float("inf")
            following = [(at, t) for at, t in eots if turn.end_ms - settings.tail_guard_ms <= at < next_start]
            if following and following[0][1].speech_end_at:
                at, rec = following[0]
                j.endpoint_wait_ms = round((rec.end_of_turn_at - rec.speech_end_at) * 1000.0, 1)
                j.endpoint_rule = rec.endpoint_rule
        out.append(j)
    return out


Sent = dict[str, tuple[float, float]]
"""Utterance label -> (first, last sample sent) in recording ms: the simulator's own events."""


def _groups(regions: list[SpeechRegion], gap_ms: float) -> list[list[SpeechRegion]]:
    """Agent regions closer than ``gap_ms`` are one agent turn (as the analysis groups them)."""
    groups: list[list[SpeechRegion]] = []
    for region in regions:
        if groups and region.start_ms - groups[-1][-1].end_ms < gap_ms:
            groups[-1].append(region)
        else:
            groups.append([region])
    return groups


def judge_barges(
    scenario: Scenario, analysis: CallAnalysis, record: CallRecord | None, origin: float, settings: JudgeSettings,
    sent: Sent | None = None,
) -> tuple[list[BargeJudgement], int]:
    """Every barge_in step, and every say that started over agent audio, judged; and how
    many barge_in steps found the agent silent (not judged).

    The caller's onset is when the utterance started to go out (``sent``), not where the
    caller-side detector first heard it: a soft start (a breath before "uhum") is caller
    sound the agent may rightly react to before the detector's threshold is crossed.
    """
    sent = sent or {}
    noise = _noise_only_labels(scenario)
    heard = {t.label: t for t in analysis.caller_turns if t.label}
    groups = _groups(analysis.agent_regions, settings.agent_turn_gap_ms)
    records = list(record.barge_ins) if record is not None else []
    used: set[int] = set()
    out: list[BargeJudgement] = []
    not_over = 0
    for i, step in enumerate(scenario.steps):
        if not isinstance(step, (Say, BargeIn)):
            continue
        label = utterance_label(i, step)
        if isinstance(step, BargeIn):
            kind: BargeKind = "interruption" if step.expect_agent == "stops" else "backchannel"
        elif isinstance(step, Say) and label not in noise:
            kind = "floor"
        else:
            continue
        caller = heard.get(label)
        span = sent.get(label) or ((caller.start_ms, caller.end_ms) if caller is not None else None)
        if span is None:  # never said (the call ended first)
            not_over += kind != "floor"
            continue
        onset = span[0]
        caller_end = caller.end_ms if caller is not None else span[1]
        near = [(abs(_mono_ms(r.onset_at, origin) - onset), k) for k, r in enumerate(records)
                if k not in used and r.onset_at]
        near = [(gap, k) for gap, k in near if gap <= settings.match_window_ms]
        group = next((g for g in groups if g[0].start_ms <= onset < g[-1].end_ms), None)
        playing = [r for r in group or [] if r.start_ms <= onset]
        audible = bool(playing) and playing[-1].end_ms > onset
        stop = playing[-1].end_ms if audible else onset  # in a gap between its sentences: already quiet
        resume = next((r.start_ms for r in analysis.agent_regions if r.start_ms > stop), None)
        resumed = resume is not None and resume <= caller_end + settings.resume_window_ms
        # Over the agent: its audio was playing (or in a short gap of one turn), or the
        # CallActor took it for a barge-in (a reply is "talking" across a gap while TTS
        # catches up), or, for a backchannel, the answer went on right after it. A barge_in
        # step also needs a reply on its way (the CallActor's record): one over fillers only
        # (no answer came) or after an earlier interruption tests nothing.
        over = bool(group or near or (kind == "backchannel" and resumed))
        if kind != "floor" and not near and record is not None:
            over = over and _reply_on(record, origin + onset / 1000.0)
        if not over:
            not_over += kind != "floor"  # a say that found the agent silent is an ordinary turn
            continue
        talked_on = stop - onset > settings.max_reaction_ms
        j = BargeJudgement(label, kind, round(onset, 1), agent_yielded=not talked_on)
        if near:
            _, k = min(near)
            used.add(k)
            j.verdict = records[k].verdict
        if kind == "backchannel":
            j.stopped = j.verdict == "interruption" or (not talked_on and not resumed)
            if audible and not talked_on and resumed and not j.stopped:
                j.pause_ms = round(resume - stop, 1)  # type: ignore[operator]
        else:
            j.agent_yielded = not talked_on and (resume is None or resume >= caller_end + settings.resume_gap_ms)
            j.stopped = j.agent_yielded and j.verdict not in ("backchannel", "noise")
            j.reaction_ms = round(stop - onset, 1) if j.agent_yielded and audible else None
        out.append(j)
    return out, not_over


def _reply_on(record: CallRecord, at: float, slack_s: float = 0.7) -> bool:
    """A reply of the call had sent its first packet by ``at`` (monotonic), had not drained
    more than ``slack_s`` before it, and no interruption had ended it."""
    for turn in record.turns:
        if not turn.first_rtp_at or turn.first_rtp_at > at:
            continue
        if turn.drained_at and turn.drained_at + slack_s < at:
            continue
        if any(b.verdict == "interruption" and turn.first_rtp_at <= b.decided_at < at for b in record.barge_ins):
            continue
        return True
    return False


def phantom_stops(
    analysis: CallAnalysis, record: CallRecord | None, origin: float, settings: JudgeSettings, sent: Sent | None = None,
) -> int:
    """Interruption verdicts with no caller sound within ``phantom_margin_ms`` of their onset."""
    if record is None:
        return 0
    m = settings.phantom_margin_ms
    spans = [(c.start_ms, c.end_ms) for c in analysis.caller_regions] + list((sent or {}).values())
    count = 0
    for r in record.barge_ins:
        if r.verdict != "interruption" or not r.onset_at:
            continue
        at = _mono_ms(r.onset_at, origin)
        if not any(start - m <= at <= end + m for start, end in spans):
            count += 1
    return count


def _heard(turn: TurnRecord) -> str:
    """What the caller heard of a reply: all of it unless interrupted; nothing if no RTP left."""
    if turn.interrupted:
        return turn.heard_text
    return turn.agent_text if turn.first_rtp_at else ""


def check_answers(scenario: Scenario, record: CallRecord | None) -> tuple[int, int, list[str]]:
    """(checks, passed, failed patterns) of expect.agent_says and the must_not_say label."""
    patterns = [a.pattern for a in scenario.expect.agent_says]
    forbidden = scenario.labels.get("must_not_say", "")
    total = len(patterns) + (1 if forbidden else 0)
    if record is None or total == 0:
        return total, 0, []
    said = " ".join(t.agent_text for t in record.turns)
    heard = " ".join(_heard(t) for t in record.turns)
    failed = [p for p in patterns if not re.search(p, said, re.IGNORECASE)]
    if forbidden and re.search(forbidden, heard, re.IGNORECASE):
        failed.append(f"not: {forbidden}")
    return total, total - len(failed), failed


def judge_call(
    scenario: Scenario, analysis: CallAnalysis, record: CallRecord | None, origin: float,
    settings: JudgeSettings = JudgeSettings(), sent: Sent | None = None,
) -> CallJudgement:
    """Everything this module counts, for one finished call (``sent``: when each utterance
    went out, from the recording's events; without it the detected caller speech is used)."""
    barges, not_over = judge_barges(scenario, analysis, record, origin, settings, sent)
    silences = silences_over(analysis, 0.0)
    total, ok, failed = check_answers(scenario, record)
    return CallJudgement(
        scenario=scenario.name,
        category=scenario.labels.get("category", "uncategorised"),
        origin=origin,
        turns=judge_turns(scenario, analysis, record, origin, settings),
        barges=barges,
        not_over_agent=not_over,
        phantom_stops=phantom_stops(analysis, record, origin, settings, sent),
        dead_air=[s for s in silences if s.duration_ms > settings.dead_air_ms],
        longest_silence_ms=round(max((s.duration_ms for s in silences), default=0.0), 1),
        silence_prompts=record.silence_prompts if record is not None else None,
        expected_total=total,
        expected_ok=ok,
        unexpected=failed,
    )
