"""Simulated SIP calls for the caller-side benchmarks (`theo bench turns`, `theo bench
pipeline`, `theo loadtest`).

It owns three things:

- :class:`SimCallPlane`: a private, uniquely named call plane (CallSupervisor + SipGateway
  shards, see theo_ray.runtime.call_plane) on free loopback SIP ports, with the ConversationSettings the benchmark asks for (streaming or
  sequential, agent or echo) on the model deployments it is given. Several planes can share
  one cluster and one set of deployments, so a benchmark compares modes in one run, and no
  plane meets the `theo up` plane.
- :func:`place_call`: one call from the caller simulator (``dial_and_run``) and the
  CallActor's CallRecord of it, as a :class:`SimCall`.
- :func:`turn_samples` / :func:`barge_in_samples`: each caller-side figure (from the
  recording) joined with the CallActor's record of the same turn, by time: the caller and the
  CallActors run on this machine and stamp with the same CLOCK_MONOTONIC, so a recording's
  millisecond maps onto the records' instants.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec

from theo_ray.config import TheoConfig
from theo_ray.conversation.records import CallRecord, TurnRecord
from theo_ray.conversation.settings import ConversationSettings
from theo_ray.model_handles import ModelHandles
from theo_ray.runtime.call_plane import CallPlane
from theo_ray.sim.call_dialer import CallFailed, dial_and_run
from theo_ray.sim.caller_runner import CallRunResult
from theo_ray.sim.percentiles import Percentiles, percentiles
from theo_ray.sim.caller_voice import CallerVoice, CallerVoiceSettings
from theo_ray.sim.impaired_line import ImpairedLine
from theo_ray.sim.scenario import BargeIn, Hangup, Say, Scenario, Silence, Step, WaitAgent

# A filler plays this long after the turn (never, in a benchmark of the reply's first audio).
NO_FILLER_DELAY_MS = 600_000


def caller_voice(config: TheoConfig) -> CallerVoice:
    """The caller voice of `theo demo`: Kokoro's pt-BR pm_alex (the agent speaks with
    pf_dora; Whisper base heard both at ~3.5 % WER over G.711, shared/leads/models.md),
    cached as WAVs so a replayed sentence is synthesised once."""
    return CallerVoice(
        config.model_cache() / "caller-voice", CallerVoiceSettings(voice="pm_alex"),
        model_cache_dir=config.model_cache(),
    )


def without_fillers(conversation: ConversationSettings) -> ConversationSettings:
    """The same conversation with fillers pushed out of any turn: the caller-side "first agent
    audio" is then the reply's, not a "hum..." played while the reply is not ready."""
    turn = conversation.turn
    fillers = msgspec.structs.replace(turn.fillers, delay_ms=NO_FILLER_DELAY_MS)
    return msgspec.structs.replace(conversation, turn=msgspec.structs.replace(turn, fillers=fillers))


class SimCallPlane(CallPlane):
    """A private call plane with the ConversationSettings a benchmark asks for (``handles``
    None with ``conversation.mode == "echo"`` is the echo agent); `shards` gateway processes
    of 4 calls each."""

    def __init__(
        self,
        config: TheoConfig,
        conversation: ConversationSettings,
        handles: ModelHandles | None,
        label: str = "sim",
        warm_pool_size: int = 2,
        shards: int = 1,
        use_ami: bool = False,
    ) -> None:
        super().__init__(
            config, handles, label=f"bench-{label}", conversation=conversation,
            warm_pool_size=warm_pool_size, shards=shards, use_ami=use_ami,
        )
        self.label = label  # what SimCall.plane reports ("turns", "streaming", ...)


class SimCall(msgspec.Struct):
    """One placed call: what the caller measured and what the CallActor recorded."""

    session_id: str
    scenario: str
    plane: str
    run: CallRunResult | None = None
    record: CallRecord | None = None
    # Not placed or broken: CallFailed, an exception, or the runner's own error.
    error: str = ""
    placed_at: float = 0.0  # monotonic
    ended_at: float = 0.0


async def place_call(
    plane: SimCallPlane, scenario: Scenario, voice: CallerVoice, out_dir: Path, session_id: str,
    answer_timeout_s: float = 15.0, uri: str = "", line: ImpairedLine | None = None,
) -> SimCall:
    """Dial ``plane`` (shard ``uri``, default the first) and play ``scenario``, over ``line``
    when given (loss, jitter, echo); never raises for a failed call (it is reported)."""
    call = SimCall(session_id=session_id, scenario=scenario.name, plane=plane.label, placed_at=time.monotonic())
    try:
        call.run = await dial_and_run(
            uri or plane.uri, scenario, voice, out_dir, headers={"X-Theo-Session": session_id},
            answer_timeout_s=answer_timeout_s, name=session_id, line=line,
        )
        call.error = call.run.error
    except CallFailed as exc:
        call.error = f"not placed: {exc}"
    except Exception as exc:  # noqa: BLE001 - a benchmark reports a broken call, it does not stop
        call.error = f"{type(exc).__name__}: {exc}"
    call.ended_at = time.monotonic()
    if call.run is not None:
        call.record = await plane.record(session_id)
        if call.record is not None:  # next to the call's WAV, for digging into one turn
            (out_dir / f"{session_id}.record.json").write_bytes(
                msgspec.json.format(msgspec.json.encode(call.record), indent=2)
            )
    return call


# ---------------------------------------------------------------- bench scenarios


def questions_scenario(name: str, questions: list[str], greeting_timeout_ms: int = 20000,
                       reply_timeout_ms: int = 30000) -> Scenario:
    """The greeting, then each question followed by the agent's whole answer, then hang up."""
    steps: list[Step] = [WaitAgent(until="ends", timeout_ms=greeting_timeout_ms)]
    for i, text in enumerate(questions):
        steps += [Say(text=text, id=f"q{i + 1}"), WaitAgent(until="ends", timeout_ms=reply_timeout_ms)]
    steps.append(Hangup(after_ms=300))
    return Scenario(name=name, steps=steps,
                    max_duration_s=60.0 + max(25.0, reply_timeout_ms / 1000.0 + 10.0) * len(questions))


def barge_in_scenario(name: str, question: str, interruption: str, rounds: int, after_ms: int = 800,
                      reply_timeout_ms: int = 30000) -> Scenario:
    """The greeting, then ``rounds`` times: a question with a long answer and, ``after_ms`` into
    that answer, the caller talking over it; then the agent's answer to the interruption."""
    steps: list[Step] = [WaitAgent(until="ends", timeout_ms=20000)]
    for i in range(rounds):
        steps += [
            Say(text=question, id=f"ask{i + 1}"),
            BargeIn(text=interruption, id=f"cut{i + 1}", after_ms=after_ms, expect_agent="stops",
                    timeout_ms=reply_timeout_ms),
            WaitAgent(until="ends", timeout_ms=reply_timeout_ms),
        ]
    steps.append(Hangup(after_ms=300))
    return Scenario(name=name, steps=steps, max_duration_s=60.0 + 40.0 * rounds)


def echo_scenario(name: str = "echo_two_utterances") -> Scenario:
    """For the echo agent (no greeting, it plays the caller back): two utterances, each
    followed by a pause that its echo fits in (the echo overlaps the caller's own speech, so
    "until the agent ends" would be a wait on something that began before the wait)."""
    steps: list[Step] = []
    for i, text in enumerate(("Oi, bom dia. Qual é o horário de atendimento de vocês?",
                              "Eu quero saber da minha fatura de janeiro.")):
        steps += [Say(text=text, id=f"u{i + 1}"), Silence(ms=1500)]
    steps.append(Hangup(after_ms=200))
    return Scenario(name=name, steps=steps, max_duration_s=60.0)


# ---------------------------------------------------------------- joining caller and CallActor figures


def recording_origin(run: CallRunResult) -> float:
    """The monotonic instant of the recording's sample 0 (it stamped wall-clock time; the
    offset between the two clocks is taken in this process, which ran the recording)."""
    return run.started_at_unix - (time.time() - time.monotonic())


def _ms(later: float, earlier: float) -> float | None:
    return round((later - earlier) * 1000.0, 1) if later and earlier else None


class TurnSample(msgspec.Struct):
    """One answered caller turn: the caller-side first-audio latency and its split from the
    CallActor's TurnRecord (ms; None where the record lacks the instant).

    The parts telescope: inbound + endpointing + stt_final + llm_first_sentence + tts_first_chunk
    + first_rtp + outbound == first_audio (inbound: caller's speech end -> the CallActor's VAD
    speech end; outbound: first reply RTP sent -> agent audio at the caller)."""

    session_id: str
    caller_turn: int
    label: str
    first_audio_ms: float
    matched: bool = False
    # End of caller speech -> the reply's own first audio at the caller (after a filler, if one
    # played first): the agent region that starts at or after the reply's first RTP packet.
    reply_audio_ms: float | None = None
    inbound_ms: float | None = None
    endpointing_wait_ms: float | None = None
    stt_final_ms: float | None = None  # end of turn -> final transcript (compute + dispatch)
    stt_compute_ms: float | None = None  # the final transcription's own compute
    llm_first_token_ms: float | None = None  # final transcript -> first LLM token
    llm_first_sentence_ms: float | None = None  # final transcript -> first sentence to TTS
    tts_first_chunk_ms: float | None = None  # first sentence -> first TTS chunk
    first_rtp_ms: float | None = None  # first TTS chunk -> first RTP packet of the reply
    outbound_ms: float | None = None
    model_compute_ms: float | None = None  # STT compute + LLM to first sentence + TTS first chunk
    overhead_ms: float | None = None  # first_audio - endpointing - model compute
    filler_played: bool = False
    endpoint_rule: str = ""
    reply_tokens: int = 0  # the LLM reply's length


def _nearest_turn(record: CallRecord, caller_end: float, used: set[int]) -> TurnRecord | None:
    """The CallActor turn whose VAD speech end lies nearest after the caller's speech end
    (it hears it a jitter buffer later; the VAD's estimate may also fall a little before)."""
    best, best_gap = None, 1.5
    for turn in record.turns:
        if turn.index in used or not turn.caller_text or not turn.speech_end_at:
            continue
        gap = abs(turn.speech_end_at - caller_end - 0.05)
        if gap < best_gap:
            best, best_gap = turn, gap
    return best


def turn_samples(call: SimCall) -> list[TurnSample]:
    """Every caller turn the agent answered, joined with its TurnRecord when one matches."""
    if call.run is None:
        return []
    origin = recording_origin(call.run)
    used: set[int] = set()
    out: list[TurnSample] = []
    for lat in call.run.analysis.latencies:
        if lat.first_audio_ms is None:
            continue
        sample = TurnSample(call.session_id, lat.caller_turn, lat.label, lat.first_audio_ms)
        turn = None
        if call.record is not None:
            turn = _nearest_turn(call.record, origin + lat.caller_end_ms / 1000.0, used)
        if turn is not None:
            used.add(turn.index)
            _fill_split(sample, turn, origin + lat.caller_end_ms / 1000.0, origin + lat.agent_start_ms / 1000.0)
            if turn.first_rtp_at:
                sent_ms = (turn.first_rtp_at - origin) * 1000.0
                reply = next((a for a in call.run.analysis.agent_regions if a.start_ms >= sent_ms - 20.0), None)
                if reply is not None:
                    sample.reply_audio_ms = round(reply.start_ms - lat.caller_end_ms, 1)
        out.append(sample)
    return out


def _fill_split(sample: TurnSample, turn: TurnRecord, caller_end: float, agent_heard: float) -> None:
    sample.matched = True
    sample.endpoint_rule = turn.endpoint_rule
    sample.reply_tokens = turn.reply_tokens
    sample.filler_played = bool(turn.filler_at and (not turn.first_rtp_at or turn.filler_at < turn.first_rtp_at))
    sample.inbound_ms = _ms(turn.speech_end_at, caller_end) if turn.speech_end_at else None
    sample.endpointing_wait_ms = _ms(turn.end_of_turn_at, turn.speech_end_at)
    sample.stt_final_ms = _ms(turn.stt_final_at, turn.end_of_turn_at)
    sample.stt_compute_ms = round(turn.stt_ms, 1) if turn.stt_ms else None
    sample.llm_first_token_ms = _ms(turn.llm_first_token_at, turn.stt_final_at)
    sample.llm_first_sentence_ms = _ms(turn.llm_first_sentence_at, turn.stt_final_at)
    sample.tts_first_chunk_ms = _ms(turn.tts_first_chunk_at, turn.llm_first_sentence_at)
    sample.first_rtp_ms = _ms(turn.first_rtp_at, turn.tts_first_chunk_at)
    sample.outbound_ms = _ms(agent_heard, turn.first_rtp_at) if turn.first_rtp_at else None
    parts = (sample.stt_compute_ms, sample.llm_first_sentence_ms, sample.tts_first_chunk_ms)
    if all(p is not None for p in parts) and sample.endpointing_wait_ms is not None and not sample.filler_played:
        sample.model_compute_ms = round(sum(parts), 1)
        sample.overhead_ms = round(sample.first_audio_ms - sample.endpointing_wait_ms - sample.model_compute_ms, 1)


class BargeInSample(msgspec.Struct):
    """One intended interruption: caller onset -> agent audio stops, at the caller; and the
    CallActor's own onset -> playout paused, when its BargeInRecord matches."""

    session_id: str
    label: str
    yielded: bool
    reaction_ms: float | None
    matched: bool = False
    actor_pause_ms: float | None = None  # VAD/energy onset -> playout paused, inside the CallActor
    # The reaction's two halves: caller onset -> CallActor paused playout (RTP in, jitter buffer,
    # detection), and paused -> agent audio stops at the caller (fade, packets in flight, the
    # caller's jitter buffer).
    to_pause_ms: float | None = None
    pause_to_silence_ms: float | None = None
    verdict: str = ""


def barge_in_samples(call: SimCall) -> list[BargeInSample]:
    if call.run is None:
        return []
    origin = recording_origin(call.run)
    used: set[int] = set()
    out: list[BargeInSample] = []
    for b in call.run.analysis.barge_ins:
        if b.intended != "stops":
            continue
        sample = BargeInSample(call.session_id, b.label, b.agent_yielded, b.reaction_ms)
        onset = origin + b.caller_onset_ms / 1000.0
        if call.record is not None:
            candidates = [
                (abs(r.onset_at - onset), i) for i, r in enumerate(call.record.barge_ins)
                if i not in used and r.onset_at and abs(r.onset_at - onset) < 1.0
            ]
            if candidates:
                _, i = min(candidates)
                used.add(i)
                record = call.record.barge_ins[i]
                sample.matched = True
                sample.verdict = record.verdict
                if record.paused_at:
                    sample.actor_pause_ms = round((record.paused_at - record.onset_at) * 1000.0, 1)
                    sample.to_pause_ms = round((record.paused_at - onset) * 1000.0, 1)
                    if b.agent_yielded:
                        stop = origin + b.agent_stop_ms / 1000.0
                        sample.pause_to_silence_ms = round((stop - record.paused_at) * 1000.0, 1)
        out.append(sample)
    return out


def unanswered_steps(call: SimCall) -> int:
    """Scenario steps that timed out waiting for the agent."""
    return sum(1 for s in call.run.steps if s.status == "timeout") if call.run is not None else 0


# Where a turn's first-audio latency went, in the order it happens (TurnSample fields).
SEGMENTS: tuple[tuple[str, str], ...] = (
    ("inbound_ms", "caller speech end -> CallActor VAD speech end (RTP + jitter buffer + VAD)"),
    ("endpointing_wait_ms", "VAD speech end -> end-of-turn decision"),
    ("stt_final_ms", "end of turn -> final transcript"),
    ("stt_compute_ms", "  of which the final transcription's compute"),
    ("llm_first_token_ms", "final transcript -> first LLM token"),
    ("llm_first_sentence_ms", "final transcript -> first sentence to TTS"),
    ("tts_first_chunk_ms", "first sentence -> first TTS chunk"),
    ("first_rtp_ms", "first TTS chunk -> first RTP packet of the reply"),
    ("outbound_ms", "first RTP packet -> agent audio at the caller"),
    ("model_compute_ms", "STT compute + LLM to first sentence + TTS first chunk"),
    ("overhead_ms", "Theo's own: first audio - endpointing - model compute"),
)


class SegmentFigures(msgspec.Struct):
    name: str
    what: str
    figures: Percentiles


def segment_figures(samples: list[TurnSample]) -> list[SegmentFigures]:
    """Percentiles of each segment over the turns whose CallActor record matched."""
    matched = [s for s in samples if s.matched]
    return [SegmentFigures(name, what, percentiles([getattr(s, name) for s in matched])) for name, what in SEGMENTS]
