"""Caller-side measurements of a call, from its recording alone (never from Theo's internals).

Speech is found per track with an energy detector whose threshold is relative to that track's
own noise floor, so the agent's comfort noise (~-60 dBFS) is not agent audio. From the speech
regions and the simulator's marked events it measures, per caller turn, end of caller speech ->
first agent audio; per barge-in, caller speech onset while the agent speaks -> agent audio stops;
stretches over 2 s with both sides silent; and overlap. ``transcribe_*`` get the words of each
turn through an injected async STT callable.

Why a hand-written energy detector and not Silero VAD: the question here is "is there agent
*audio* on the line", not "is this human speech" — a tone or a click the agent sends counts
too — and it must be exact to the sample on synthetic test signals, with no model to load.
The work is numpy over a whole call (milliseconds); async callers run :func:`analyse` in an
executor.

Why ~560 lines in one module: detection, turn pairing, latencies, barge-ins, silences (and
the dead air among them) and overlap fill one CallAnalysis from the same regions and events;
split apart they would hand a half-built analysis between modules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

import msgspec
import numpy as np

from theo_ray.sim.recording import CallRecording, RecordingEvent

# Frames with no signal at all (digital silence) are left out of the noise-floor estimate.
_DIGITAL_SILENCE_DBFS = -90.0


class VadSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Energy speech detector. Threshold = noise floor + ``snr_margin_db``, clamped to
    [``min_threshold_dbfs``, ``max_threshold_dbfs``]; the floor is the ``noise_percentile``-th
    percentile of the track's frame levels (digital silence excluded)."""

    frame_ms: int = 10
    noise_percentile: float = 10.0
    snr_margin_db: float = 15.0
    min_threshold_dbfs: float = -55.0
    # A track that is nearly all speech has a "floor" at speech level; this keeps speech detectable.
    max_threshold_dbfs: float = -40.0
    # Bursts shorter than this are clicks, not speech.
    min_speech_ms: int = 40
    # Gaps inside speech (stop consonants, short breaths) shorter than this do not split a region.
    merge_gap_ms: int = 200


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


class SpeechRegion(msgspec.Struct, frozen=True):
    start_ms: float
    end_ms: float

    @property
    def duration_ms(self) -> float:
        return self.end_ms - self.start_ms


class TrackLevels(msgspec.Struct, frozen=True):
    """What the detector decided for one track."""

    noise_floor_dbfs: float
    threshold_dbfs: float
    # 95th percentile frame level of detected speech (None: no speech).
    speech_level_dbfs: float | None


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


class Percentiles(msgspec.Struct, frozen=True):
    """Summary of a list of figures; the statistics are None when ``count`` is 0."""

    count: int
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean: float | None = None
    max: float | None = None


def percentiles(values: Sequence[float | None]) -> Percentiles:
    """p50/p95/p99/mean/max of the values that are not None (linear interpolation)."""
    data = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if data.size == 0:
        return Percentiles(count=0)
    p50, p95, p99 = np.percentile(data, [50, 95, 99])
    return Percentiles(
        count=int(data.size),
        p50=round(float(p50), 1),
        p95=round(float(p95), 1),
        p99=round(float(p99), 1),
        mean=round(float(data.mean()), 1),
        max=round(float(data.max()), 1),
    )


# ---------------------------------------------------------------- speech detection


def frame_levels_dbfs(samples: np.ndarray, frame_len: int) -> np.ndarray:
    """RMS level of each whole frame in dBFS (int16 full scale = 0 dBFS); digital silence ~ -120."""
    n = len(samples) // frame_len
    if n == 0:
        return np.zeros(0)
    frames = samples[: n * frame_len].astype(np.float64).reshape(n, frame_len) / 32768.0
    return 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)


def detect_speech(
    samples: np.ndarray, sample_rate: int, vad: VadSettings = VadSettings()
) -> tuple[list[SpeechRegion], TrackLevels]:
    """Speech regions of one int16 track and the levels the decision used."""
    frame_len = max(1, sample_rate * vad.frame_ms // 1000)
    levels = frame_levels_dbfs(samples, frame_len)
    audible = levels[levels > _DIGITAL_SILENCE_DBFS]
    floor = float(np.percentile(audible, vad.noise_percentile)) if audible.size else -120.0
    threshold = min(max(floor + vad.snr_margin_db, vad.min_threshold_dbfs), vad.max_threshold_dbfs)
    active = levels > threshold

    # Runs of active frames, as [start_frame, end_frame).
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    runs = list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))
    merge_frames = vad.merge_gap_ms / vad.frame_ms
    merged: list[list[int]] = []
    for start, end in runs:
        if merged and start - merged[-1][1] < merge_frames:
            merged[-1][1] = end
        else:
            merged.append([int(start), int(end)])

    # Refine each edge to the sample: the first/last sample whose amplitude reaches the
    # threshold's RMS level, searched within the edge frames (and the frame before the onset).
    amp = 32768.0 * 10 ** (threshold / 20.0)
    regions: list[SpeechRegion] = []
    speech_levels: list[np.ndarray] = []
    for start_f, end_f in merged:
        if (end_f - start_f) * vad.frame_ms < vad.min_speech_ms:
            continue
        lo = max(0, (start_f - 1) * frame_len)
        head = np.flatnonzero(np.abs(samples[lo : (start_f + 1) * frame_len].astype(np.int32)) >= amp)
        start_s = lo + int(head[0]) if head.size else start_f * frame_len
        tail_lo = (end_f - 1) * frame_len
        tail = np.flatnonzero(np.abs(samples[tail_lo : end_f * frame_len].astype(np.int32)) >= amp)
        end_s = tail_lo + int(tail[-1]) + 1 if tail.size else end_f * frame_len
        regions.append(SpeechRegion(_ms(start_s, sample_rate), _ms(end_s, sample_rate)))
        speech_levels.append(levels[start_f:end_f])
    speech = np.concatenate(speech_levels) if speech_levels else np.zeros(0)
    return regions, TrackLevels(
        noise_floor_dbfs=round(floor, 1),
        threshold_dbfs=round(threshold, 1),
        speech_level_dbfs=round(float(np.percentile(speech, 95)), 1) if speech.size else None,
    )


def _ms(sample: int, rate: int) -> float:
    return round(float(sample) * 1000.0 / rate, 2)


# ---------------------------------------------------------------- the call


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

    call_start = next((_ms(e.sample, rate) for e in events if e.kind == "call_answered"), 0.0)
    call_end = next(
        (_ms(e.sample, rate) for e in reversed(events) if e.kind in ("hangup", "call_ended")),
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
            open_at[e.label] = _ms(e.sample, rate)
        elif e.kind == "utterance_end" and e.label in open_at:
            spans.append((e.label, open_at.pop(e.label), _ms(e.sample, rate)))
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


# ---------------------------------------------------------------- words


Transcriber = Callable[[np.ndarray, int], Awaitable[str]]
"""async (int16 mono samples, sample rate) -> text; the simulator passes our STT deployment here."""


class TurnText(msgspec.Struct, frozen=True):
    index: int
    start_ms: float
    end_ms: float
    text: str


async def transcribe_agent_turns(
    recording: CallRecording, analysis: CallAnalysis, transcribe: Transcriber, pad_ms: int = 150
) -> list[TurnText]:
    """The agent's words per agent turn (rx track), for expectation checks and the transcript."""
    spans = [(t.index, t.start_ms, t.end_ms) for t in analysis.agent_turns]
    return await _transcribe(recording, "rx", spans, transcribe, pad_ms)


async def transcribe_caller_turns(
    recording: CallRecording, analysis: CallAnalysis, transcribe: Transcriber, pad_ms: int = 150
) -> list[TurnText]:
    """The caller's words per caller turn (tx track), when the scenario played WAVs without text."""
    spans = [(t.index, t.start_ms, t.end_ms) for t in analysis.caller_turns]
    return await _transcribe(recording, "tx", spans, transcribe, pad_ms)


async def _transcribe(
    recording: CallRecording,
    track: Literal["tx", "rx"],
    spans: list[tuple[int, float, float]],
    transcribe: Transcriber,
    pad_ms: int,
) -> list[TurnText]:
    samples = recording.track(track)
    rate = recording.sample_rate
    out: list[TurnText] = []
    for index, start, end in spans:
        lo = max(0, int((start - pad_ms) * rate / 1000))
        hi = min(len(samples), int((end + pad_ms) * rate / 1000))
        text = await transcribe(samples[lo:hi], rate)
        out.append(TurnText(index, start, end, text.strip()))
    return out
