"""Settings of the per-call turn logic (splitter, VAD, turn model, endpointing, barge-in,
memory, prompt, tools, comfort noise). The lead composes `TurnSettings` into the top-level config.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from theo_ray.errors import ConfigError


class SplitterSettings(msgspec.Struct, forbid_unknown_fields=True):
    # Cut the first piece of a reply at a clause (comma, " e ", " mas ") once it has this many
    # words, so the caller hears something sooner. 0 disables the early cut.
    first_clause_min_words: int = 4
    # A piece longer than this is cut at its last comma/space so TTS never waits for a run-on.
    max_piece_chars: int = 220
    # The same for the first piece of a reply, shorter: the caller waits for its whole TTS
    # (Kokoro on 2 cores: ~35 ms per character). Until that many characters went out, the
    # next piece is held to it too (a short opener plays in under a second); then a piece may
    # be as long as everything before it, at least twice this (up to max_piece_chars), so it
    # is ready before those have played. A sentence ending within 10 characters past a
    # limit goes whole.
    # 0 = every piece up to max_piece_chars. 32: with the llama.cpp default a 60-character
    # first piece ("A fatura de janeiro é oitenta e nove reais e noventa centavos.") put
    # first content audio at ~5 s; the TTS of 60 characters alone took 2.2 s beside the LLM.
    first_piece_max_chars: int = 32


class RepetitionGuardSettings(msgspec.Struct, forbid_unknown_fields=True):
    """When a reply counts as stuck in a loop (see `theo_ray.turn.repetition_guard`)."""

    enabled: bool = True
    # A unit of this many words at most, repeated back to back at the end of the reply.
    max_unit_words: int = 16
    # Repeats that make a loop, by unit length: one word ("Colas, Colas, ..."), 2-4 words
    # ("o que o que ..."), longer (a whole sentence said again and again).
    single_word_repeats: int = 8
    short_unit_repeats: int = 4
    long_unit_repeats: int = 3

    def __post_init__(self) -> None:
        if self.max_unit_words < 1:
            raise ConfigError("conversation.turn.repetition_guard.max_unit_words", "must be at least 1")
        if min(self.single_word_repeats, self.short_unit_repeats, self.long_unit_repeats) < 2:
            raise ConfigError("conversation.turn.repetition_guard", "a loop needs at least 2 repeats")


class VadSettings(msgspec.Struct, forbid_unknown_fields=True):
    start_threshold: float = 0.5  # probability that opens speech
    stop_threshold: float = 0.35  # probability under which a frame counts as silence
    min_speech_ms: int = 96  # speech must last this long before "speech start" (3 windows)
    min_silence_ms: int = 160  # silence must last this long before "speech end"
    # The speech end is moved back to the last 10 ms block louder than the line's floor
    # + 12 dB (and `end_energy_rms`, int16 RMS) within this much before Silero's last speech
    # window ends (0 = Silero's window end as it is).
    end_lookback_ms: int = 96
    end_energy_rms: float = 60.0
    threads: int = 1


class TurnModelSettings(msgspec.Struct, forbid_unknown_fields=True):
    # Empty: ensure_smart_turn_model() finds/extracts the packaged model into cache_dir.
    model_path: str = ""
    cache_dir: str = "~/.cache/theo/models"
    threads: int = 1


class EndpointingSettings(msgspec.Struct, forbid_unknown_fields=True):
    base_silence_ms: int = 600  # no rule applies
    min_silence_ms: int = 300  # complete sentence, turn marker, turn model sure it ended
    hesitation_silence_ms: int = 1200  # sentence visibly unfinished ("Eu quero...")
    dictation_silence_ms: int = 1600  # caller dictating digits (CPF, phone, protocol)
    max_silence_ms: int = 3000  # end the turn after this much silence whatever the rules say
    # "hum", "deixa eu ver", "peraí" at the end: the caller is thinking or looking something up
    # (the turn-taking corpus pauses 1.2-2.2 s there).
    thinking_silence_ms: int = 2400
    # A caller this far into a statement (voiced speech in the turn) is telling a story: a
    # full stop waits long_turn_silence_ms (pauses between its sentences run 0.8-2 s); a
    # question still ends the turn at once. 0 turns the rule off.
    long_turn_speech_ms: int = 5000
    long_turn_silence_ms: int = 1800
    turn_complete_threshold: float = 0.7  # Smart Turn probability above which the turn ended
    turn_incomplete_threshold: float = 0.2  # ... and below which the caller is mid-thought
    # Words that close a turn when they end the transcript.
    turn_markers: list[str] = msgspec.field(
        default_factory=lambda: [
            "né", "tá", "tá bom", "tá certo", "é isso", "só isso", "entende", "sabe",
            "obrigado", "obrigada", "valeu", "tchau", "por favor", "beleza",
        ]
    )


class BackchannelSettings(msgspec.Struct, forbid_unknown_fields=True):
    min_speech_ms: int = 150  # less voiced speech than this is noise (cough, click, breath)
    max_backchannel_ms: int = 1200  # a backchannel is short; longer speech is an interruption
    max_backchannel_words: int = 3
    short_burst_ms: int = 600  # one word this short that is no stop word counts as a backchannel
    # A burst no longer than max_backchannel_ms whose words (no stop word among them) the STT
    # heard with a lower mean probability is a misheard acknowledgement, not content: measured
    # on Kokoro voices over G.711, misheard "aham"/"uhum"/"sei" 0.04-0.45, most short
    # questions and objections 0.55-0.95 (the cost: "E o boleto?" heard at 0.41, or a
    # garbled "para, para", goes on as a backchannel; the caller says it again, longer).
    # 0 turns the rule off.
    min_content_word_probability: float = 0.5


class MemorySettings(msgspec.Struct, forbid_unknown_fields=True):
    token_budget: int = 1500  # history above this (estimated) is folded into the summary
    keep_recent_turns: int = 6  # turns never summarised
    summary_max_chars: int = 900
    summary_timeout_s: float = 8.0
    # What one caller turn may put into the LLM's context: longer transcripts (a monologue
    # with the endpointer never firing) keep their first this many characters (counted).
    max_caller_chars: int = 2000

    def __post_init__(self) -> None:
        if not 100 <= self.max_caller_chars <= 100_000:
            raise ConfigError("conversation.turn.memory.max_caller_chars", "must be 100..100000")


class PromptSettings(msgspec.Struct, forbid_unknown_fields=True):
    # Empty: a packaged persona. "compact" (persona_ptbr_compact.md, ~390 tokens with its
    # tool-call example) suits the embedded 1.5B model: on 2 cores every prompt token costs
    # prefill time, and the long persona made the small model answer worse. "full"
    # (persona_ptbr.md, ~800 tokens) is for the GPU cluster's larger models.
    path: str = ""
    persona: Literal["compact", "full"] = "compact"
    company_name: str = "Empresa"
    agent_name: str = "Theo"
    extra_instructions: str = ""


class DeclaredTool(msgspec.Struct, forbid_unknown_fields=True):
    """A tool declared in config; `parameters` is a JSON Schema object."""

    name: str
    description: str
    parameters: dict = msgspec.field(default_factory=lambda: {"type": "object", "properties": {}})
    after_speech: bool = False


class ToolSettings(msgspec.Struct, forbid_unknown_fields=True):
    # Transfer destinations the model may name, with what each one handles (said to the caller).
    transfer_destinations: dict[str, str] = msgspec.field(
        default_factory=lambda: {"atendimento": "um atendente humano para qualquer assunto"}
    )
    tools: list[DeclaredTool] = []
    # The `send_dtmf` tool: the agent may press keys towards the far end (an IVR or a PBX
    # menu after a transfer, a conference PIN) as RFC 4733 events. Off by default: on an
    # inbound contact-centre call there is usually nothing to press keys at.
    send_dtmf: bool = False
    # A tool call whose arguments, as JSON, are longer than this is rejected (and counted)
    # before validation: every tool here takes a destination, a reason or a few keys.
    max_argument_bytes: int = 2048

    def __post_init__(self) -> None:
        if not 64 <= self.max_argument_bytes <= 1_000_000:
            raise ConfigError("conversation.turn.tools.max_argument_bytes", "must be 64..1000000")


class FillerSettings(msgspec.Struct, forbid_unknown_fields=True):
    delay_ms: int = 500  # play a filler when the first audio is not ready after this
    # Still nothing this long after a filler ended (a slow or failing-over model): another,
    # different filler, up to max_per_reply in all, so a long wait is never dead air.
    repeat_after_ms: int = 1200
    max_per_reply: int = 2


class TurnSettings(msgspec.Struct, forbid_unknown_fields=True):
    splitter: SplitterSettings = msgspec.field(default_factory=SplitterSettings)
    repetition_guard: RepetitionGuardSettings = msgspec.field(default_factory=RepetitionGuardSettings)
    vad: VadSettings = msgspec.field(default_factory=VadSettings)
    turn_model: TurnModelSettings = msgspec.field(default_factory=TurnModelSettings)
    endpointing: EndpointingSettings = msgspec.field(default_factory=EndpointingSettings)
    backchannel: BackchannelSettings = msgspec.field(default_factory=BackchannelSettings)
    memory: MemorySettings = msgspec.field(default_factory=MemorySettings)
    prompt: PromptSettings = msgspec.field(default_factory=PromptSettings)
    tools: ToolSettings = msgspec.field(default_factory=ToolSettings)
    # No comfort_noise table: a call's comfort noise is media.idle_fill_dbfs (the retired
    # key is still accepted, see theo_ray/config_retired.py).
    fillers: FillerSettings = msgspec.field(default_factory=FillerSettings)
