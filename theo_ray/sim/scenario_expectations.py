"""The scenario's checks against a finished call: ``scenario.expect`` (what the agent says,
transfer, first-audio and barge-in reaction limits, longest silence) and every barge-in
step's intent (the agent stops, or talks on), each an :class:`ExpectationResult`.
"""

from __future__ import annotations

import re

import msgspec

from theo_ray.sim.analysis import CallAnalysis, silences_over
from theo_ray.sim.call_outcome import CallOutcome
from theo_ray.sim.scenario import BargeIn, Scenario
from theo_ray.sim.turn_transcripts import TurnText


class ExpectationResult(msgspec.Struct, frozen=True):
    name: str
    passed: bool
    detail: str = ""


def check_expectations(
    scenario: Scenario,
    analysis: CallAnalysis,
    outcome: CallOutcome,
    agent_texts: list[TurnText],
) -> list[ExpectationResult]:
    """Check ``scenario.expect`` and every barge-in step's intent against the call."""
    expect = scenario.expect
    out: list[ExpectationResult] = []
    texts = {t.index: t.text for t in agent_texts}
    for says in expect.agent_says:
        where = f"agent turn {says.turn}" if says.turn else "the call"
        text = texts.get(says.turn) if says.turn else " ".join(texts.values())
        name = f"agent_says[{where}] ~ /{says.pattern}/"
        if text is None:
            out.append(ExpectationResult(name, False, f"{where} has no audio"))
        else:
            found = re.search(says.pattern, text, re.IGNORECASE) is not None
            out.append(ExpectationResult(name, found, f"heard: {text!r}"))

    if expect.transfer is not None:
        out.append(
            ExpectationResult(
                f"transfer = {expect.transfer}",
                outcome.transferred == expect.transfer,
                f"transferred={outcome.transferred} reason={outcome.transfer_reason!r}",
            )
        )

    if expect.max_first_audio_ms is not None:
        limit = expect.max_first_audio_ms
        last = analysis.latencies[-1].caller_turn if analysis.latencies else None
        for lat in analysis.latencies:
            name = f"first_audio[turn {lat.caller_turn}] <= {limit} ms"
            if lat.first_audio_ms is None:
                # The caller's last words may get no reply before it hangs up; any other turn must.
                if lat.caller_turn != last:
                    out.append(ExpectationResult(name, False, "no agent audio before the next caller turn"))
            else:
                out.append(ExpectationResult(name, lat.first_audio_ms <= limit, f"{lat.first_audio_ms} ms"))

    intended = {label: step for label, step in scenario.labelled_utterances() if isinstance(step, BargeIn)}
    measured = {b.label: b for b in analysis.barge_ins if b.label}
    for label, step in intended.items():
        name = f"barge_in[{label}] agent {step.expect_agent}"
        barge = measured.get(label)
        if barge is None:
            out.append(ExpectationResult(name, False, "the utterance did not overlap agent audio"))
            continue
        ok = barge.agent_yielded == (step.expect_agent == "stops")
        detail = f"agent audio stopped at {barge.agent_stop_ms} ms, caller onset {barge.caller_onset_ms} ms"
        out.append(ExpectationResult(name, ok, detail))
        if step.expect_agent == "stops" and expect.max_barge_in_reaction_ms is not None and barge.agent_yielded:
            limit = expect.max_barge_in_reaction_ms
            out.append(
                ExpectationResult(
                    f"barge_in_reaction[{label}] <= {limit} ms",
                    barge.reaction_ms is not None and barge.reaction_ms <= limit,
                    f"{barge.reaction_ms} ms",
                )
            )

    if expect.max_silence_ms is not None:
        silences = silences_over(analysis, expect.max_silence_ms)
        longest = max((s.duration_ms for s in silences), default=0.0)
        out.append(
            ExpectationResult(
                f"silence <= {expect.max_silence_ms} ms",
                not silences,
                f"longest over the limit: {round(longest)} ms" if silences else "none over the limit",
            )
        )
    return out
