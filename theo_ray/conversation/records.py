"""What one call recorded about its turns: typed, checkpointable, the source of the call
summary, the trace spans and the `theo bench turns` split."""

from __future__ import annotations

from typing import Literal

import msgspec

from theo_ray.messages import ToolCall

# The instants a turn records, each a `<event>_at` field of TurnRecord. A new metric is a
# field here, a name in this list and one `turn.stamp(...)` where it happens.
TurnEvent = Literal[
    "speech_end", "end_of_turn", "stt_final", "llm_first_token", "llm_first_sentence",
    "tts_first_chunk", "first_audio_enqueued", "first_rtp", "filler", "drained",
]


class ToolExecution(msgspec.Struct):
    call: ToolCall
    drained_at: float  # playout says the caller heard everything before it (monotonic)
    executed_at: float
    ok: bool
    detail: str = ""


class BargeInRecord(msgspec.Struct):
    onset_at: float  # caller speech onset estimated from the VAD (monotonic)
    paused_at: float  # playout paused (fade) — agent audio stops at the caller after this
    verdict: str = ""  # interruption | backchannel | noise | unconfirmed
    decided_at: float = 0.0
    heard: str = ""  # what the caller heard of the reply, when interrupted
    caller_text: str = ""


class TurnRecord(msgspec.Struct):
    index: int
    caller_text: str = ""
    agent_text: str = ""
    heard_text: str = ""
    interrupted: bool = False
    endpoint_rule: str = ""
    endpoint_reason: str = ""
    # Monotonic instants (0.0 = did not happen).
    speech_end_at: float = 0.0  # VAD: last voiced window of the caller's turn
    end_of_turn_at: float = 0.0  # endpointer decided
    stt_final_at: float = 0.0
    llm_first_token_at: float = 0.0
    llm_first_sentence_at: float = 0.0
    tts_first_chunk_at: float = 0.0
    first_audio_enqueued_at: float = 0.0
    first_rtp_at: float = 0.0  # first packet of the reply (not filler/noise) sent
    filler_at: float = 0.0
    filler_text: str = ""  # the filler(s) played before the reply, if any, in order
    drained_at: float = 0.0
    stt_ms: float = 0.0  # compute of the final transcription
    reply_tokens: int = 0  # the LLM's completion tokens for this reply
    llm_model: str = ""  # which language model answered: "llm", or "llm_fallback"
    # Whisper's confidence in caller_text (duration-weighted avg_logprob; 0.0 typed or none).
    caller_logprob: float = 0.0
    asked_to_repeat: bool = False  # too unsure of caller_text to answer it: asked to repeat
    # The dictated digits read back for confirmation instead of answered (caller_gate.py),
    # space-separated runs; "" if none. readback_confirmed: this turn was a yes to one (the
    # model was given the turn read back).
    read_back: str = ""
    readback_confirmed: bool = False
    # The words the model kept repeating when the reply was stopped as a loop (bad model
    # output, counted here; nothing of it after the loop was found was spoken).
    reply_loop: str = ""
    tools: list[ToolExecution] = []
    error: str = ""

    def stamp(self, event: TurnEvent, at: float) -> bool:
        """Record when `event` first happened in this turn (a later one keeps the first);
        True when this call set it."""
        field = f"{event}_at"
        if getattr(self, field):
            return False
        setattr(self, field, at)
        return True


class CallRecord(msgspec.Struct):
    session_id: str
    caller_id: str = ""
    started_at: float = 0.0
    ended_at: float = 0.0
    end_reason: str = ""
    trace_id: str = ""
    greeting_text: str = ""
    turns: list[TurnRecord] = []
    barge_ins: list[BargeInRecord] = []
    backchannels_played: int = 0
    fillers_played: int = 0
    silence_prompts: int = 0  # reprompts and goodbyes said because nobody spoke
    repeat_requests: int = 0  # turns answered with "could you repeat?" (low STT confidence)
    readbacks: int = 0  # dictated numbers read back for confirmation (a digit heard unsure)
    keys_pressed: int = 0  # DTMF keys the caller pressed (entries are turns, endpoint_rule "keypad")
    keypad_shortcuts: list[str] = []  # shortcut keys that acted ("0" -> a human)
    # Playout pauses taken at packet arrival (the barge-in fast path), confirmed or undone.
    early_pauses: int = 0
    transferred_to: str = ""
    transfer_reason: str = ""
    errors: list[str] = []
    # Model streams cancelled for going quiet, per stage (stt, llm_first_token, llm_token_gap,
    # tts_first_chunk, tts_chunk_gap).
    model_timeouts: dict[str, int] = {}
    # Ends of turn the caller went on talking after (the reply dropped, no TurnRecord):
    # (end_of_turn_at, endpoint_rule), so a cut-off can be traced to the rule that made it.
    resumed_turns: list[tuple[float, str]] = []
    # Replies moved to the fallback language model (the primary failed, was late or its
    # breaker was open).
    llm_fallbacks: int = 0
    # The call's stereo WAV (left caller, right agent) when call_data.recording is on, and
    # the audio in it, ms (CallActor, media/call_recorder.py).
    recording_path: str = ""
    recording_ms: float = 0.0
    # Per-call caps hit (conversation/call_limits.py caps_hit): call_seconds, caller_chars,
    # memory_token_budget, tool_argument_bytes; only those hit.
    limits_hit: dict[str, int] = {}

    def count_timeout(self, stage: str) -> None:
        self.model_timeouts[stage] = self.model_timeouts.get(stage, 0) + 1
