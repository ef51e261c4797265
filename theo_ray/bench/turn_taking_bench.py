"""`theo bench turn-taking`: the turn-taking corpus played by simulated callers, judged at the caller.

The corpus (theo_ray/sim/scenarios/turn_taking/, one YAML scenario per case, labelled with
its ``category``) holds dictation with pauses, backchannels at several points of long
answers, corrections in the thinking gap and mid-answer, hesitations, long monologues,
silences, noise bursts and echo. Every scenario is played once per caller voice (a Kokoro
voice and espeak-ng pt-BR by default) over its own line (``line: echo`` scenarios through an
echoing line), and the ``impaired: yes`` subset once more, with the first voice, over a line
with loss and jitter (:mod:`theo_ray.sim.impaired_line`). The calls go one at a time into a private
call plane (the configured conversation: fillers, silence reprompts and barge-in settings as
Theo runs them) whose language model is the scripted TEST DOUBLE with the corpus's own rules
(scripted_llm.toml beside the scenarios), on the real STT and TTS deployments.

Each call is judged by :mod:`theo_ray.bench.turn_taking_judge`; the report sums the
judgements per category, per line, per voice and overall, beside the targets. A benchmark,
not a test: it reports what it measured and asserts nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from theo_ray.bench.sim_calls import SimCall, SimCallPlane, place_call, recording_origin
from theo_ray.bench.turn_taking_judge import CallJudgement, JudgeSettings, Sent, judge_call
from theo_ray.config import TheoConfig
from theo_ray.model_handles import ModelHandles
from theo_ray.sim.caller_runner import render_utterances
from theo_ray.sim.percentiles import Percentiles, percentiles
from theo_ray.sim.caller_voice import CallerVoice
from theo_ray.sim.espeak_voice import caller_voice_named
from theo_ray.sim.impaired_line import ImpairedLine, LineSettings
from theo_ray.sim.recording import RecordingSidecar
from theo_ray.sim.scenario import Scenario, load_scenarios

CORPUS_DIR = Path(__file__).resolve().parents[1] / "sim" / "scenarios" / "turn_taking"
SCRIPTED_RULES = CORPUS_DIR / "scripted_llm.toml"
SCRIPTED_LLM_APP = "theo-llm-scripted-turn-taking"
CATEGORIES = ("dictation", "backchannel", "correction", "hesitation", "monologue", "silence", "noise", "echo")


class TurnTakingBenchSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    voices: list[str] = msgspec.field(default_factory=lambda: ["pm_alex", "espeak"])
    categories: list[str] = []  # empty: all
    names: list[str] = []  # only these scenarios (empty: all)
    limit: int = 0  # at most this many scenarios (after the category filter); 0: all
    # At most this many scenarios of each category (0: all): the impaired subset's first,
    # then by name. A shorter run that still covers every category with every voice.
    per_category: int = 0
    impaired: bool = True  # play the `impaired: yes` subset once more over the impaired line
    impaired_line: LineSettings = LineSettings(loss_percent=3.0, jitter_ms=40.0)
    # Mutual silence longer than the configured reprompt delay plus this is dead air.
    dead_air_grace_ms: float = 1000.0
    corpus: str = str(CORPUS_DIR)
    rules: str = str(SCRIPTED_RULES)


class Run(msgspec.Struct, frozen=True):
    """One call to place: a scenario, a voice, a line."""

    scenario: Scenario
    voice: str
    line_name: str  # clean | echo | impaired
    line: LineSettings | None = None


class TurnTakingReport(msgspec.Struct):
    settings: TurnTakingBenchSettings
    dead_air_ms: float
    reprompt_after_s: float
    scenarios: int
    rows: list[SummaryRow]  # per category, then per line, per voice, overall (last)
    calls: list[CallJudgement]
    wall_s: float = 0.0
    errors: list[str] = []

    def row(self, name: str) -> SummaryRow | None:
        return next((r for r in self.rows if r.name == name), None)


def load_corpus(settings: TurnTakingBenchSettings) -> list[Scenario]:
    scenarios = load_scenarios(settings.corpus)
    if settings.categories:
        scenarios = [s for s in scenarios if s.labels.get("category") in settings.categories]
    if settings.names:
        scenarios = [s for s in scenarios if s.name in settings.names]
    if settings.per_category > 0:
        ranked = sorted(scenarios, key=lambda s: (s.labels.get("impaired") != "yes", s.name))
        kept: set[str] = set()
        for category in dict.fromkeys(s.labels.get("category", "") for s in scenarios):
            kept.update(s.name for s in [r for r in ranked if r.labels.get("category", "") == category][
                : settings.per_category])
        scenarios = [s for s in scenarios if s.name in kept]
    return scenarios[: settings.limit] if settings.limit > 0 else scenarios


def scenario_line(scenario: Scenario) -> tuple[str, LineSettings | None]:
    """The line a scenario asks for in its labels: clean, or an echoing one."""
    if scenario.labels.get("line") != "echo":
        return "clean", None
    return "echo", LineSettings(echo_gain_db=float(scenario.labels.get("echo_gain_db", "-12")),
                                echo_delay_ms=float(scenario.labels.get("echo_delay_ms", "120")))


def plan_runs(scenarios: list[Scenario], settings: TurnTakingBenchSettings) -> list[Run]:
    """Every scenario with every voice on its own line (one scenario's calls next to each
    other, so a run cut short is still balanced), then the impaired subset with the first
    voice (loss and jitter are a property of the line, not of the voice; one voice keeps the
    whole run near 40 minutes on 2 cores)."""
    runs: list[Run] = []
    for scenario in scenarios:
        name, line = scenario_line(scenario)
        runs += [Run(scenario, voice, name, line) for voice in settings.voices]
    if settings.impaired:
        for scenario in scenarios:
            if scenario.labels.get("impaired") == "yes":
                _, echo = scenario_line(scenario)
                line = settings.impaired_line
                if echo is not None:
                    line = msgspec.structs.replace(line, echo_gain_db=echo.echo_gain_db, echo_delay_ms=echo.echo_delay_ms)
                runs.append(Run(scenario, settings.voices[0], "impaired", line))
    return runs


def judge_settings(config: TheoConfig, settings: TurnTakingBenchSettings) -> JudgeSettings:
    reprompt_s = config.conversation.silence.reprompt_after_s or 6.0  # reprompts off: judged at 6 s
    return JudgeSettings(dead_air_ms=reprompt_s * 1000.0 + settings.dead_air_grace_ms,
                         agent_ack_after_ms=float(config.conversation.backchannel_after_speech_ms))


def sent_spans(events_path: str) -> Sent:
    """Each utterance's (first, last sample sent) in ms, from the recording's events."""
    try:
        sidecar = msgspec.json.decode(Path(events_path).read_bytes(), type=RecordingSidecar)
    except (OSError, msgspec.DecodeError):
        return {}
    starts: dict[str, float] = {}
    out: Sent = {}
    for e in sorted(sidecar.events, key=lambda e: e.sample):
        if e.track not in (None, "tx") or not e.label:
            continue
        ms = e.sample * 1000.0 / sidecar.sample_rate
        if e.kind == "utterance_start":
            starts[e.label] = ms
        elif e.kind == "utterance_end" and e.label in starts:
            out[e.label] = (round(starts.pop(e.label), 1), round(ms, 1))
    return out


def judge_sim_call(
    call: SimCall, scenario: Scenario, run: Run, settings: JudgeSettings, origin: float | None = None,
) -> CallJudgement:
    if call.run is None:
        return CallJudgement(scenario=scenario.name, category=scenario.labels.get("category", ""), voice=run.voice,
                             line=run.line_name, session_id=call.session_id, error=call.error or "no recording")
    origin = origin or recording_origin(call.run)
    sent = sent_spans(call.run.events_path)
    judged = judge_call(scenario, call.run.analysis, call.record, origin, settings, sent)
    judged.voice, judged.line, judged.session_id, judged.error = run.voice, run.line_name, call.session_id, call.error
    stall = 0.0
    for step in call.run.steps:  # the runner notes "<N> ms sent" per utterance
        said = re.search(r"(\d+) ms sent", step.detail)
        if said and step.label in sent:
            start, end = sent[step.label]
            stall += max(0.0, end - start - float(said.group(1)))
    judged.caller_stall_ms = round(stall, 1)
    return judged


# ---------------------------------------------------------------- summing up

TARGET_CUT_OFF_RATE = 0.05
TARGET_FALSE_BARGE_IN_RATE = 0.05
TARGET_MISSED_BARGE_INS = 0
TARGET_DEAD_AIR = 0
# A call whose utterances went out this much later than written, in all, did not play its
# scenario as written (the simulator's sending stalled).
STALL_TOLERANCE_MS = 100.0


class SummaryRow(msgspec.Struct):
    """The figures of a group of judged calls (a category, a line, a voice, or all)."""

    name: str
    calls: int = 0
    failed_calls: int = 0
    caller_turns: int = 0  # speech turns judged for cut-offs (noise WAVs left out)
    cut_offs: int = 0
    cut_off_rate: float | None = None
    agent_acks: int = 0
    cut_in: Percentiles = Percentiles(count=0)  # how long the agent audio that cut in lasted
    endpoint_wait: Percentiles = Percentiles(count=0)
    backchannels: int = 0  # backchannel/noise bursts over agent audio
    backchannels_stopped: int = 0
    phantom_stops: int = 0
    false_barge_in_rate: float | None = None
    backchannel_pause: Percentiles = Percentiles(count=0)
    not_over_agent: int = 0
    interruptions: int = 0  # barge_in "stops" steps and say turns that took the floor
    missed_barge_ins: int = 0
    reaction: Percentiles = Percentiles(count=0)
    dead_air: int = 0
    longest_silence_ms: float = 0.0
    noise_utterances: int = 0
    noise_answered: int = 0
    # Calls whose utterances went out STALL_TOLERANCE_MS or more later than written (CallJudgement.caller_stall_ms).
    stalled_calls: int = 0
    expected_total: int = 0
    expected_ok: int = 0
    targets: dict[str, bool] = {}  # target name -> met (absent: nothing to judge it on)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def summarise(name: str, calls: list[CallJudgement]) -> SummaryRow:
    row = SummaryRow(name=name, calls=len(calls), failed_calls=sum(1 for c in calls if c.error))
    turns = [t for c in calls for t in c.turns]
    speech = [t for t in turns if not t.noise_only]
    barges = [b for c in calls for b in c.barges]
    backchannels = [b for b in barges if b.kind == "backchannel"]
    stops = [b for b in barges if b.kind != "backchannel"]
    row.caller_turns = len(speech)
    row.cut_offs = sum(1 for t in speech if t.cut_off)
    row.cut_off_rate = _rate(row.cut_offs, row.caller_turns)
    row.agent_acks = sum(t.agent_acks for t in speech)
    row.cut_in = percentiles([t.cut_in_ms for t in speech if t.cut_off])
    row.endpoint_wait = percentiles([t.endpoint_wait_ms for t in speech])
    row.backchannels = len(backchannels)
    row.backchannels_stopped = sum(1 for b in backchannels if b.stopped)
    row.phantom_stops = sum(c.phantom_stops for c in calls)
    row.false_barge_in_rate = _rate(row.backchannels_stopped + row.phantom_stops,
                                    row.backchannels + row.phantom_stops)
    row.backchannel_pause = percentiles([b.pause_ms for b in backchannels])
    row.not_over_agent = sum(c.not_over_agent for c in calls)
    row.interruptions = len(stops)
    row.missed_barge_ins = sum(1 for b in stops if not b.stopped)
    row.reaction = percentiles([b.reaction_ms for b in stops if b.kind == "interruption"])
    row.dead_air = sum(len(c.dead_air) for c in calls)
    row.longest_silence_ms = max((c.longest_silence_ms for c in calls), default=0.0)
    row.noise_utterances = sum(1 for t in turns if t.noise_only)
    row.noise_answered = sum(1 for t in turns if t.noise_only and t.noise_answered)
    row.stalled_calls = sum(1 for c in calls if c.caller_stall_ms >= STALL_TOLERANCE_MS)
    row.expected_total = sum(c.expected_total for c in calls)
    row.expected_ok = sum(c.expected_ok for c in calls)
    targets: dict[str, bool] = {}
    if row.cut_off_rate is not None:
        targets["false_cut_off"] = row.cut_off_rate <= TARGET_CUT_OFF_RATE
    if row.false_barge_in_rate is not None:
        targets["false_barge_in"] = row.false_barge_in_rate <= TARGET_FALSE_BARGE_IN_RATE
    if row.interruptions:
        targets["missed_barge_in"] = row.missed_barge_ins <= TARGET_MISSED_BARGE_INS
    if calls:
        targets["dead_air"] = row.dead_air <= TARGET_DEAD_AIR
    row.targets = targets
    return row


def summary_rows(calls: list[CallJudgement]) -> list[SummaryRow]:
    rows = []
    categories = [c for c in CATEGORIES if any(j.category == c for j in calls)]
    categories += sorted({j.category for j in calls} - set(categories))
    for category in categories:
        rows.append(summarise(category, [j for j in calls if j.category == category]))
    for line in ("clean", "echo", "impaired"):
        group = [j for j in calls if j.line == line]
        if group:
            rows.append(summarise(f"line: {line}", group))
    for voice in dict.fromkeys(j.voice for j in calls):
        rows.append(summarise(f"voice: {voice}", [j for j in calls if j.voice == voice]))
    rows.append(summarise("overall", calls))
    # On a busy machine the simulator's own sending stalls: those calls did not play the
    # scenario as written (longer pauses, chopped words). The same figures without them:
    clean_sends = [j for j in calls if j.caller_stall_ms < STALL_TOLERANCE_MS and not j.error]
    if 0 < len(clean_sends) < len(calls):
        rows.append(summarise("overall, sent as written", clean_sends))
    return rows


async def run_turn_taking_bench(
    config: TheoConfig,
    stt: object,
    tts: object,
    settings: TurnTakingBenchSettings = TurnTakingBenchSettings(),
    out_dir: Path = Path("out/bench-turn-taking"),
    say: Callable[[str], None] = print,
) -> TurnTakingReport:
    """Place every planned call one at a time and judge it. Ray must be initialised; ``stt``
    and ``tts`` are handles to the speech deployments (the scripted LLM is deployed here and
    deleted at the end)."""
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    scenarios = load_corpus(settings)
    runs = plan_runs(scenarios, settings)
    voices: dict[str, CallerVoice] = {
        name: caller_voice_named(name, config.model_cache() / "caller-voice", config.model_cache())
        for name in settings.voices
    }
    say(f"{len(scenarios)} scenarios, {len(runs)} calls; rendering the caller's utterances (cached after the first run) ...")
    for scenario in scenarios:
        for voice in voices.values():
            await render_utterances(scenario, voice)
    judging = judge_settings(config, settings)
    calls: list[CallJudgement] = []
    errors: list[str] = []
    tag = time.strftime("%H%M%S")
    from theo_ray.runtime.serve_apps import deploy_scripted_model

    llm = deploy_scripted_model(config, settings.rules, SCRIPTED_LLM_APP)
    try:
        handles = ModelHandles(stt=stt, llm=llm, tts=tts)
        async with SimCallPlane(config, config.conversation, handles, "turn-taking", warm_pool_size=1) as plane:
            for i, run in enumerate(runs, start=1):
                session_id = f"tt-{tag}-{i:03d}-{run.scenario.name}-{run.voice}-{run.line_name}"[:120]
                line = ImpairedLine(run.line) if run.line is not None else None
                call = await place_call(plane, run.scenario, voices[run.voice], out_dir, session_id, line=line)
                judged = judge_sim_call(call, run.scenario, run, judging)
                calls.append(judged)
                if judged.error:
                    errors.append(f"{session_id}: {judged.error}")
                say(f"[{i}/{len(runs)}] {describe_call(judged)}")
    finally:
        from ray import serve

        serve.delete(SCRIPTED_LLM_APP)
    return TurnTakingReport(
        settings=settings,
        dead_air_ms=judging.dead_air_ms,
        reprompt_after_s=config.conversation.silence.reprompt_after_s,
        scenarios=len(scenarios),
        rows=summary_rows(calls),
        calls=calls,
        wall_s=round(time.monotonic() - started, 1),
        errors=errors,
    )


def rejudge(config: TheoConfig, report_path: Path, recordings: Path) -> TurnTakingReport:
    """A finished run judged again from what it saved (each call's result, events and
    CallActor record in ``recordings``), with this code's judging and the corpus's current
    labels: a change to the judging is checked without placing the calls again."""
    from theo_ray.conversation.records import CallRecord
    from theo_ray.sim.caller_runner import CallRunResult

    old = msgspec.json.decode(report_path.read_bytes(), type=TurnTakingReport)
    corpus = old.settings.corpus if Path(old.settings.corpus).is_dir() else str(CORPUS_DIR)
    scenarios = {s.name: s for s in load_scenarios(corpus)}
    judging = judge_settings(config, old.settings)
    calls: list[CallJudgement] = []
    for before in old.calls:
        scenario = scenarios.get(before.scenario)
        result = recordings / f"{before.session_id}.result.json"
        if scenario is None or before.error or not result.is_file():
            calls.append(before)
            continue
        record_path = recordings / f"{before.session_id}.record.json"
        call = SimCall(session_id=before.session_id, scenario=before.scenario, plane="turn-taking",
                       run=msgspec.json.decode(result.read_bytes(), type=CallRunResult),
                       record=msgspec.json.decode(record_path.read_bytes(), type=CallRecord)
                       if record_path.is_file() else None)
        call.run = msgspec.structs.replace(call.run, events_path=str(recordings / Path(call.run.events_path).name))
        calls.append(judge_sim_call(call, scenario, Run(scenario, before.voice, before.line), judging,
                                    before.origin or None))
    return msgspec.structs.replace(old, rows=summary_rows(calls), calls=calls, dead_air_ms=judging.dead_air_ms)


def describe_call(j: CallJudgement) -> str:
    """One line per call for the progress output."""
    head = f"{j.scenario} · {j.voice} · {j.line}: "
    if j.error and not j.turns:
        return head + f"failed ({j.error})"
    parts = []
    cut = [t.label for t in j.turns if t.cut_off]
    parts.append(f"cut off in {cut}" if cut else "no cut-off")
    waits = [f"{t.endpoint_wait_ms:.0f}" for t in j.turns if t.endpoint_wait_ms is not None]
    if waits:
        parts.append(f"endpoint wait ms {waits}")
    for b in j.barges:
        what = "stopped" if b.stopped else "went on"
        extra = f" in {b.reaction_ms:.0f} ms" if b.reaction_ms is not None else ""
        extra += f", paused {b.pause_ms:.0f} ms" if b.pause_ms is not None else ""
        parts.append(f"{b.kind} {b.label}: {what}{extra} (verdict: {b.verdict or 'none'})")
    if j.not_over_agent:
        parts.append(f"{j.not_over_agent} barge-in(s) found the agent silent")
    if j.phantom_stops:
        parts.append(f"{j.phantom_stops} stop(s) with no caller sound")
    if j.dead_air:
        parts.append(f"dead air {[round(d.duration_ms) for d in j.dead_air]} ms")
    if j.expected_total:
        parts.append(f"answers {j.expected_ok}/{j.expected_total}" + (f" (failed {j.unexpected})" if j.unexpected else ""))
    if j.error:
        parts.append(f"error: {j.error}")
    return head + "; ".join(parts)
