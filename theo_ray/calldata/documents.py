"""The call-data documents: what one call leaves behind, as typed msgspec Structs.

Owns the shape of the two documents (one `TurnDocument` per caller turn, one
`CallDocument` per call) and their deterministic ids. The same JSON goes to the local
JSON-lines log and to Elasticsearch; `es_schema` maps every field explicitly (a field added
here without a mapping there fails the schema test, never a dynamic mapping in production).

Times: `@timestamp`, `started_at`, `ended_at` are wall-clock ISO 8601 UTC strings
(Elasticsearch `date`); durations are milliseconds (`float`, None when the stage did not
happen in that turn).
"""

from __future__ import annotations

from typing import Literal

import msgspec

SCHEMA_VERSION = 1

CallOutcome = Literal["completed", "transferred", "abandoned", "failed"]


class StageTimings(msgspec.Struct, kw_only=True):
    """Where one turn's latency went inside Theo (the demo table's split), in ms."""

    endpointing_ms: float | None = None  # caller's speech end -> end of turn decided
    stt_ms: float | None = None  # end of turn -> final transcript
    stt_compute_ms: float | None = None  # the final transcription's compute alone
    llm_first_token_ms: float | None = None  # final transcript -> first token
    llm_first_sentence_ms: float | None = None  # final transcript -> first piece for TTS
    tts_first_chunk_ms: float | None = None  # first piece -> first synthesised chunk
    first_rtp_ms: float | None = None  # end of turn -> first packet of the reply sent
    response_ms: float | None = None  # caller's speech end -> first packet of the reply
    filler_ms: float | None = None  # caller's speech end -> filler started (if one played)


class ToolCallDoc(msgspec.Struct, kw_only=True):
    name: str
    arguments_json: str = ""  # the arguments as JSON text (free-form: not mapped field by field)
    ok: bool = False
    detail: str = ""
    wait_ms: float | None = None  # playout drained -> executed


class BargeInDoc(msgspec.Struct, kw_only=True):
    verdict: str = ""  # interruption | backchannel | noise | unconfirmed
    reaction_ms: float | None = None  # caller's speech onset -> playout paused
    decided_ms: float | None = None  # onset -> verdict
    heard: str = ""  # what the caller heard of the reply before the cut
    caller_text: str = ""


class TurnDocument(msgspec.Struct, kw_only=True, rename={"timestamp": "@timestamp"}):
    doc_id: str  # "<session_id>:turn:<index>" (also the Elasticsearch _id)
    session_id: str
    trace_id: str = ""
    turn_index: int
    timestamp: str  # wall clock of the caller's speech end (or the end of turn)
    caller_id: str = ""
    caller_text: str = ""
    agent_text_heard: str = ""  # cut at the barge-in point (em dash) when interrupted
    agent_text_generated: str = ""  # what the model wrote for this turn
    interrupted: bool = False
    endpoint_rule: str = ""
    endpoint_reason: str = ""
    barge_in_verdict: str = ""  # the decisive verdict during this reply ("" = none)
    barge_ins: list[BargeInDoc] = []
    timings: StageTimings = msgspec.field(default_factory=StageTimings)
    filler_text: str = ""
    reply_tokens: int = 0
    llm_model: str = ""  # which language model answered ("llm", "llm_fallback")
    reply_loop: str = ""
    tool_calls: list[ToolCallDoc] = []
    error: str = ""
    schema_version: int = SCHEMA_VERSION


class MediaQuality(msgspec.Struct, kw_only=True):
    """The caller's leg as the CallActor's RTP session measured it."""

    codec: str = ""
    mos: float | None = None
    jitter_ms: float | None = None  # RFC 3550 interarrival jitter, mean over the call
    loss_fraction: float | None = None  # lost / expected, 0..1, over the call
    packets_in: int = 0
    packets_out: int = 0
    lost: int = 0
    concealed_frames: int = 0
    rtt_ms: float | None = None
    remote_loss_fraction: float | None = None
    remote_jitter_ms: float | None = None
    send_interval_error_p99_ms: float | None = None


class StageCount(msgspec.Struct, kw_only=True):
    """A per-stage counter as a list item (no free-form keys: the mapping stays strict)."""

    stage: str
    count: int


class ConversationMetrics(msgspec.Struct, kw_only=True):
    """GAP 16's conversation figures as Theo's own record gives them."""

    turns: int = 0  # caller turns answered (or attempted)
    barge_ins: int = 0  # interruptions (verdict "interruption")
    barge_in_rate: float = 0.0  # interruptions per turn
    backchannels: int = 0  # caller "uhum"s heard as backchannels (verdict)
    backchannels_played: int = 0  # agent "uhum"s said during a long caller turn
    fillers_played: int = 0
    silence_prompts: int = 0
    early_pauses: int = 0
    model_timeouts: int = 0
    llm_fallbacks: int = 0  # replies the fallback language model gave
    reply_loops: int = 0
    tool_calls: int = 0
    errors: int = 0
    response_ms_p50: float | None = None  # caller's speech end -> first reply packet
    response_ms_p95: float | None = None
    response_ms_max: float | None = None
    # The caller waited more than 2 s after their turn for the reply's first sound: the
    # "silence > 2 s" of GAP 16 as the CallActor knows it (mutual silence needs the caller's ear).
    slow_responses: int = 0
    repeat_requests: int = 0  # "pode repetir?" (an unsure or failed transcript)
    repeat_rate: float = 0.0  # per caller turn
    readbacks: int = 0  # dictated numbers read back for confirmation
    # Task completion as Theo can tell it: the call ended in the conversation (the agent's
    # goodbye or the caller's) with every caller turn answered and no emergency, or reached a
    # human it asked for; turns_to_resolution = caller turns until then (None otherwise).
    task_completed: bool = False
    turns_to_resolution: int | None = None


class CallDocument(msgspec.Struct, kw_only=True, rename={"timestamp": "@timestamp"}):
    doc_id: str  # "<session_id>:call"
    session_id: str
    trace_id: str = ""
    timestamp: str  # = ended_at
    started_at: str
    ended_at: str
    duration_ms: float
    caller_id: str = ""
    outcome: CallOutcome = "completed"
    end_reason: str = ""
    transferred_to: str = ""
    transfer_reason: str = ""
    greeting_text: str = ""
    transcript: str = ""  # "Caller: ...\nTheo: ..." as heard, for full-text search
    metrics: ConversationMetrics = msgspec.field(default_factory=ConversationMetrics)
    model_timeouts: list[StageCount] = []  # per stage (stt, llm_first_token, ...)
    errors: list[str] = []
    media: MediaQuality | None = None
    recording_path: str = ""  # the call's stereo WAV (left caller, right agent), when one was written
    recording_duration_ms: float | None = None  # the audio in it (None: not recorded)
    node: str = ""  # where the call ran (host name)
    schema_version: int = SCHEMA_VERSION


class CallDocuments(msgspec.Struct, kw_only=True):
    """Everything one call writes: its summary and its turns, turns in order."""

    call: CallDocument
    turns: list[TurnDocument] = []


def turn_doc_id(session_id: str, turn_index: int) -> str:
    return f"{session_id}:turn:{turn_index}"


def call_doc_id(session_id: str) -> str:
    return f"{session_id}:call"


def to_json_dict(document: TurnDocument | CallDocument) -> dict:
    """The document as the JSON object stored (field renames applied, None kept as null)."""
    return msgspec.to_builtins(document)
