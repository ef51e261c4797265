"""Caller-side measurements of a call, from its recording alone (never from Theo's internals).

From the speech regions of each track (:mod:`theo_ray.sim.speech_regions`) and the
simulator's marked events it measures, per caller turn, end of caller speech -> first agent
audio; per barge-in, caller speech onset while the agent speaks -> agent audio stops;
stretches over 2 s with both sides silent (and the dead air among them); and overlap.
Turn pairing, latencies, barge-ins, silences and overlap fill one :class:`CallAnalysis` from
the same regions and events, so they stay together here. The work is numpy over a whole
call (milliseconds); async callers run :func:`analyse` in an executor. The words of each
turn are :mod:`theo_ray.sim.turn_transcripts`' job.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from theo_ray.sim.recording import CallRecording, RecordingEvent
from theo_ray.sim.speech_regions import SpeechRegion, TrackLevels, VadSettings, detect_speech, sample_ms


class AnalysisSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    vad: VadSettings = VadSettings()
    # Both sides silent longer than this while the call is up is a "long silence" (GAP 16).
    long_silence_ms: int = 2000
    # Agent speech regions closer than this belong to one agent turn (pauses between sentences).
    agent_turn_gap_ms: int = 700
    # Without utterance events: caller regions closer than this, with no agent audio between,
    # are one caller turn (covers dictation pauses).
    caller_turn_gap_ms: int = 2000
    # The agent yielded to caller speech over it if its audio stopped within ``max_reaction_ms`` of
    # the caller's onset and stayed off until ``resume_gap_ms`` after the caller stopped; otherwise
    # it talked on (a backchannel, or a missed barge-in) — a pause between its sentences that
    # happens to cover a short "uhum" is not yielding.
    max_reaction_ms: int = 1500
    resume_gap_ms: int = 300
    # An utterance's speech may trail its utterance_end event by this much (frame in flight).
    utterance_slack_ms: int = 200


CallerTurnKind = Literal["turn", "barge_in", "backchannel"]


class CallerTurn(msgspec.Struct, frozen=True):
    """One caller utterance. ``index`` counts from 1; times are of the detected speech."""

    index: int
    kind: CallerTurnKind
    start_ms: float
    end_ms: float
    label: str = ""


class AgentTurn(msgspec.Struct, frozen=True):
    """One stretch of agent audio (sentences with short pauses). ``index`` counts from 1 (greeting = 1);
    ``after_caller_turn`` is the last caller turn that started before it (0: none, the greeting)."""

    index: int
    start_ms: float
    end_ms: float
    after_caller_turn: int
    regions: list[SpeechRegion] = []


class TurnLatency(msgspec.Struct, frozen=True):
    """End of caller speech -> first agent audio after it, for one caller turn (not backchannels).
    ``first_audio_ms`` None: the agent did not answer before the caller spoke again / hung up."""

    caller_turn: int
    caller_end_ms: float
    agent_start_ms: float | None
    first_audio_ms: float | None
    label: str = ""


class BargeInMeasure(msgspec.Struct, frozen=True):
    """Caller speech that started while agent audio was playing.

    ``reaction_ms`` = agent audio stop - caller onset, when the agent yielded (None when it talked
    on). ``intended`` is what the scenario wanted ("stops" / "continues"), None without events.
    """

    caller_turn: int
    caller_onset_ms: float
    caller_end_ms: float
    agent_turn: int
    agent_stop_ms: float
    agent_yielded: bool
    reaction_ms: float | None
    intended: Literal["stops", "continues"] | None = None
    label: str = ""


class Interval(msgspec.Struct, frozen=True):
    start_ms: float
    end_ms: float

    @property
    def duration_ms(self) -> float:
        return self.end_ms - self.start_ms


class CallAnalysis(msgspec.Struct, frozen=True):
    sample_rate: int
    duration_ms: float
    # The span measured for silences: call answered -> hang-up (from events; else the whole file).
    call_start_ms: float
    call_end_ms: float
    caller_levels: TrackLevels
    agent_levels: TrackLevels
    caller_regions: list[SpeechRegion]
    agent_regions: list[SpeechRegion]
    caller_turns: list[CallerTurn]
    agent_turns: list[AgentTurn]
    latencies: list[TurnLatency]
    barge_ins: list[BargeInMeasure]
    long_silences: list[Interval]
    overlaps: list[Interval]
    overlap_ms: float


def analyse(recording: CallRecording, settings: AnalysisSettings = AnalysisSettings()) -> CallAnalysis:
    """Measure a finished call from its two tracks and its events."""
    rate = recording.sample_rate
    caller_regions, caller_levels = detect_speech(recording.track("tx"), rate, settings.vad)
    agent_regions, agent_levels = detect_speech(recording.track("rx"), rate, settings.vad)
    events = sorted(recording.events, key=lambda e: e.sample)

    agent_spans = _group(agent_regions, settings.agent_turn_gap_ms)
    caller_turns = (
        _caller_turns_from_events(events, caller_regions, rate, settings)
        if any(e.kind == "utterance_start" for e in events)
        else _caller_turns_from_audio(caller_regions, agent_regions, agent_spans, settings)
    )
    agent_turns = [
        AgentTurn(
            index=i + 1,
            start_ms=span[0].start_ms,
            end_ms=span[-1].end_ms,
            after_caller_turn=max((t.index for t in caller_turns if t.start_ms < span[0].start_ms), default=0),
            regions=span,
        )
        for i, span in enumerate(agent_spans)
    ]
    intent = _intents(events)
    barge_ins = _barge_ins(caller_turns, caller_regions, agent_regions, agent_turns, intent, settings)
    latencies = _latencies(caller_turns, agent_regions)

    call_start = next((sample_ms(e.sample, rate) for e in events if e.kind == "call_answered"), 0.0)
    call_end = next(
        (sample_ms(e.sample, rate) for e in reversed(events) if e.kind in ("hangup", "call_ended")),
        recording.duration_ms,
    )
    call_end = min(call_end, recording.duration_ms)
    speech = sorted(caller_regions + agent_regions, key=lambda r: r.start_ms)
    overlaps = _intersections(caller_regions, agent_regions)
    return CallAnalysis(
        sample_rate=rate,
        duration_ms=recording.duration_ms,
        call_start_ms=call_start,
        call_end_ms=call_end,
        caller_levels=caller_levels,
        agent_levels=agent_levels,
        caller_regions=caller_regions,
        agent_regions=agent_regions,
        caller_turns=caller_turns,
        agent_turns=agent_turns,
        latencies=latencies,
        barge_ins=barge_ins,
        long_silences=_silences(speech, call_start, call_end, settings.long_silence_ms),
        overlaps=overlaps,
        overlap_ms=round(sum(o.duration_ms for o in overlaps), 1),
    )


def silences_over(analysis: CallAnalysis, min_ms: float) -> list[Interval]:
    """Stretches longer than ``min_ms`` with both sides silent while the call was up."""
    speech = sorted(analysis.caller_regions + analysis.agent_regions, key=lambda r: r.start_ms)
    return _silences(speech, analysis.call_start_ms, analysis.call_end_ms, min_ms)


def dead_air_over(analysis: CallAnalysis, min_ms: float) -> list[Interval]:
    """The silences of ``silences_over`` that were not the caller's turn to speak: all but a
    pause that follows the agent's speech and that the caller ends by speaking (a caller
    taking their time to answer is not dead air; the agent owing an answer, a gap between a
    filler and the reply, or silence before the greeting is)."""
    labelled = sorted([(r.start_ms, r.end_ms, "caller") for r in analysis.caller_regions]
                      + [(r.start_ms, r.end_ms, "agent") for r in analysis.agent_regions])
    out = []
    for gap in silences_over(analysis, min_ms):
        before = [who for start, end, who in labelled if end <= gap.start_ms + 1.0]
        after = [who for start, end, who in labelled if start >= gap.end_ms - 1.0]
        if before and after and before[-1] == "agent" and after[0] == "caller":
            continue
        out.append(gap)
    return out


def _group(regions: list[SpeechRegion], gap_ms: float) -> list[list[SpeechRegion]]:
    groups: list[list[SpeechRegion]] = []
    for region in regions:
        if groups and region.start_ms - groups[-1][-1].end_ms < gap_ms:
            groups[-1].append(region)
        else:
            groups.append([region])
    return groups


def _intents(events: list[RecordingEvent]) -> dict[str, Literal["stops", "continues"]]:
    """Utterance label -> what the scenario wanted the agent to do when it was spoken over it."""
    out: dict[str, Literal["stops", "continues"]] = {}
    for e in events:
        if e.kind == "barge_in":
            out[e.label] = "stops"
        elif e.kind == "backchannel":
            out[e.label] = "continues"
    return out


def _caller_turns_from_events(
    events: list[RecordingEvent], regions: list[SpeechRegion], rate: int, settings: AnalysisSettings
) -> list[CallerTurn]:
    """One turn per utterance_start/utterance_end pair (a caller utterance the simulator played)."""
    intent = _intents(events)
    open_at: dict[str, float] = {}
    spans: list[tuple[str, float, float]] = []
    for e in events:
        if e.track not in (None, "tx"):
            continue
        if e.kind == "utterance_start":
            open_at[e.label] = sample_ms(e.sample, rate)
        elif e.kind == "utterance_end" and e.label in open_at:
            spans.append((e.label, open_at.pop(e.label), sample_ms(e.sample, rate)))
    # An utterance cut short by the hang-up has no end event: it ends at the last speech.
    for label, start in open_at.items():
        spans.append((label, start, regions[-1].end_ms if regions else start))
    spans.sort(key=lambda s: s[1])
    turns: list[CallerTurn] = []
    for label, start, end in spans:
        inside = [
            r for r in regions if r.end_ms > start and r.start_ms < end + settings.utterance_slack_ms
        ]
        speech_start = max(start, inside[0].start_ms) if inside else start
        speech_end = inside[-1].end_ms if inside else end
        kind: CallerTurnKind = {"stops": "barge_in", "continues": "backchannel"}.get(intent.get(label, ""), "turn")
        turns.append(CallerTurn(len(turns) + 1, kind, speech_start, speech_end, label))
    return turns


def _caller_turns_from_audio(
    regions: list[SpeechRegion],
    agent_regions: list[SpeechRegion],
    agent_spans: list[list[SpeechRegion]],
    settings: AnalysisSettings,
) -> list[CallerTurn]:
    """Group caller regions into turns; the kind follows from what the agent was doing."""
    groups: list[list[SpeechRegion]] = []
    for region in regions:
        if groups:
            prev_end = groups[-1][-1].end_ms
            agent_between = any(prev_end <= a.start_ms < region.start_ms for a in agent_regions)
            if not agent_between and region.start_ms - prev_end < settings.caller_turn_gap_ms:
                groups[-1].append(region)
                continue
        groups.append([region])
    turns: list[CallerTurn] = []
    for group in groups:
        onset, end = group[0].start_ms, group[-1].end_ms
        kind: CallerTurnKind = "turn"
        span = next((s for s in agent_spans if s[0].start_ms < onset < s[-1].end_ms), None)
        if span is not None:
            stop = _agent_stop(span, onset)
            yielded = _yielded(agent_regions, onset, stop, group[0].end_ms, settings)
            kind = "barge_in" if yielded else "backchannel"
        turns.append(CallerTurn(len(turns) + 1, kind, onset, end))
    return turns


def _agent_stop(span: list[SpeechRegion], onset_ms: float) -> float:
    """End of the agent region playing at (or last before) the caller's onset."""
    return [r for r in span if r.start_ms <= onset_ms][-1].end_ms


def _yielded(
    agent_regions: list[SpeechRegion], onset: float, stop: float, caller_end: float, settings: AnalysisSettings
) -> bool:
    """Did the agent stop for the caller (see AnalysisSettings.max_reaction_ms / resume_gap_ms)?"""
    if stop - onset > settings.max_reaction_ms:
        return False
    return not any(stop < r.start_ms < caller_end + settings.resume_gap_ms for r in agent_regions)


def _barge_ins(
    caller_turns: list[CallerTurn],
    caller_regions: list[SpeechRegion],
    agent_regions: list[SpeechRegion],
    agent_turns: list[AgentTurn],
    intent: dict[str, Literal["stops", "continues"]],
    settings: AnalysisSettings,
) -> list[BargeInMeasure]:
    out: list[BargeInMeasure] = []
    for turn in caller_turns:
        onset = turn.start_ms
        agent = next((a for a in agent_turns if a.start_ms < onset < a.end_ms), None)
        if agent is None:
            continue
        stop = _agent_stop(agent.regions, onset)
        # The caller speech the agent had to react to: the first caller region of this turn.
        first = next((r for r in caller_regions if r.end_ms > onset), None)
        caller_end = first.end_ms if first is not None else turn.end_ms
        yielded = _yielded(agent_regions, onset, stop, caller_end, settings)
        out.append(
            BargeInMeasure(
                caller_turn=turn.index,
                caller_onset_ms=onset,
                caller_end_ms=caller_end,
                agent_turn=agent.index,
                # Talked on: the agent's audio stopped only when its turn ended.
                agent_stop_ms=stop if yielded else agent.end_ms,
                agent_yielded=yielded,
                reaction_ms=round(max(0.0, stop - onset), 1) if yielded else None,
                intended=intent.get(turn.label) if turn.label else None,
                label=turn.label,
            )
        )
    return out


def _latencies(caller_turns: list[CallerTurn], agent_regions: list[SpeechRegion]) -> list[TurnLatency]:
    answered = [t for t in caller_turns if t.kind != "backchannel"]
    out: list[TurnLatency] = []
    for i, turn in enumerate(answered):
        limit = answered[i + 1].start_ms if i + 1 < len(answered) else float("inf")
        reply = next((a for a in agent_regions if turn.end_ms <= a.start_ms < limit), None)
        out.append(
            TurnLatency(
                caller_turn=turn.index,
                caller_end_ms=turn.end_ms,
                agent_start_ms=reply.start_ms if reply else None,
                first_audio_ms=round(reply.start_ms - turn.end_ms, 1) if reply else None,
                label=turn.label,
            )
        )
    return out


def _silences(speech: list[SpeechRegion], start: float, end: float, min_ms: float) -> list[Interval]:
    out: list[Interval] = []
    cursor = start
    for region in speech:
        if region.start_ms - cursor > min_ms:
            out.append(Interval(cursor, min(region.start_ms, end)))
        cursor = max(cursor, region.end_ms)
        if cursor >= end:
            break
    if end - cursor > min_ms:
        out.append(Interval(cursor, end))
    return [s for s in out if s.duration_ms > min_ms]


def _intersections(a: list[SpeechRegion], b: list[SpeechRegion]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i].start_ms, b[j].start_ms), min(a[i].end_ms, b[j].end_ms)
        if hi > lo:
            out.append(Interval(lo, hi))
        if a[i].end_ms < b[j].end_ms:
            i += 1
        else:
            j += 1
    return out


