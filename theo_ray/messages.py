"""Typed messages at every boundary between actors and deployments (msgspec Structs).

Audio travels as little-endian int16 mono PCM bytes with an explicit sample rate.
Every request carries what it needs (deployments are stateless) plus the W3C trace
context of the call, so one trace spans actors and deployments.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class TraceContext(msgspec.Struct, frozen=True):
    """W3C trace context (``traceparent`` header value) of the call; empty when untraced."""

    traceparent: str = ""


# ---------------------------------------------------------------- speech-to-text


class TranscribeRequest(msgspec.Struct, frozen=True):
    """Audio to transcribe: int16 mono PCM at 16 kHz (the only rate the STT accepts)."""

    audio: bytes
    sample_rate: int = 16000
    language: str = "pt"
    # Text the caller said before (helps Whisper keep names/numbers consistent).
    prompt: str = ""
    # What the agent just asked ("Qual é o seu CPF?"): decoded as the text said before this
    # audio, so Whisper expects its answer (digits after a CPF question). stt.domain_terms
    # are added by the deployment itself.
    hint: str = ""
    word_timestamps: bool = True
    request_id: str = ""
    trace: TraceContext = TraceContext()


class Word(msgspec.Struct, frozen=True):
    text: str
    start: float
    end: float
    # The decoder's probability of this word (faster-whisper: the mean over its tokens), 0..1;
    # low on a word it guessed.
    probability: float


class Segment(msgspec.Struct, frozen=True):
    """One decoded segment; the STT deployment streams these as they are decoded.

    Confidence, for asking the caller to repeat instead of answering a guess:
    - `avg_logprob`: mean log-probability of the segment's tokens (Whisper treats < -1 as
      unsure);
    - `no_speech_prob`: the decoder's probability that the audio holds no speech at all;
    - `words[i].probability` and `min_word_probability` (the lowest word's, None without
      word timestamps): a dictated digit or a name heard at 0.3 is a guess;
    - `temperature`: 0 unless stt.temperature_fallback re-decoded the segment because it
      looked unsure at 0 (then the sampled transcript is itself less certain);
    - `redecoded`: the fitted window's transcript looked like a decoding loop and this is
      the full 30 s window's (see stt.loop_words_per_s).
    """

    text: str
    start: float
    end: float
    avg_logprob: float
    no_speech_prob: float
    words: list[Word] = []
    min_word_probability: float | None = None
    temperature: float = 0.0
    redecoded: bool = False


# ---------------------------------------------------------------- language model


Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(msgspec.Struct, frozen=True):
    id: str
    name: str
    arguments: dict[str, Any] = {}


class ChatMessage(msgspec.Struct, frozen=True):
    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = []
    tool_call_id: str = ""


class ToolSchema(msgspec.Struct, frozen=True):
    """A tool the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str
    parameters: dict[str, Any] = {}


class GenerateRequest(msgspec.Struct, frozen=True):
    messages: list[ChatMessage]
    tools: list[ToolSchema] = []
    max_tokens: int = 160
    # At least this many tokens before the model may end (a benchmark's fixed reply length;
    # 0 = the model decides). A scripted test double ignores it.
    min_tokens: int = 0
    temperature: float = 0.0
    request_id: str = ""
    trace: TraceContext = TraceContext()


class LlmDelta(msgspec.Struct, frozen=True):
    """One streamed piece of a reply: text, a complete tool call, or the finish.

    The last delta of a stream has ``finish_reason`` set and the token counts.
    """

    text: str = ""
    tool_call: ToolCall | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


# ---------------------------------------------------------------- text-to-speech


class SynthesizeRequest(msgspec.Struct, frozen=True):
    text: str
    voice: str = ""
    speed: float = 0.0  # 0: the deployment's configured tts.speed
    request_id: str = ""
    trace: TraceContext = TraceContext()


class TtsChunk(msgspec.Struct, frozen=True):
    """A piece of synthesised speech; ``text`` is the sentence it belongs to."""

    pcm: bytes
    sample_rate: int
    index: int
    text: str = ""
    final: bool = False


# ---------------------------------------------------------------- deployment introspection


class ModelInfo(msgspec.Struct, frozen=True):
    """What a deployment replica loaded and how long it took."""

    backend: str
    model: str
    load_seconds: float
    sample_rate: int = 0


class LlmEngineStats(msgspec.Struct, frozen=True):
    """Request accounting of one LanguageModel replica (abort = engine freed the request)."""

    active: int
    completed: int
    aborted: int
    # Wall-clock (time.time()) when the last abort was seen by the replica and when the
    # engine confirmed it; the benchmark subtracts the client's cancel time.
    last_abort_seen_at: float = 0.0
    last_abort_done_at: float = 0.0
    last_aborted_request_id: str = ""
    engine_unfinished: int = 0
    malformed_tool_calls: int = 0
