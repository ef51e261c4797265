"""Settings of one call's conversation (composed into TheoConfig as `conversation`)."""

from __future__ import annotations

from typing import Literal

import msgspec

from theo_ray.errors import ConfigError
from theo_ray.turn.keypad import KeypadSettings
from theo_ray.turn.settings import TurnSettings

_STRICT = {"forbid_unknown_fields": True, "kw_only": True}


class EchoGateSettings(msgspec.Struct, **_STRICT):
    block_ms: int = 10  # envelope resolution
    max_delay_ms: int = 600  # longest echo path searched
    # Before the path is learned, sound at least this much quieter than what we just sent
    # is taken for echo (a line echo return loss under 6 dB would be a broken line).
    default_erl_db: float = 6.0
    min_correlation: float = 0.75  # envelope correlation that identifies the echo path
    margin_db: float = 6.0  # inbound louder than the predicted echo by this much = caller speech
    history_ms: int = 2000  # reference/inbound envelope kept for the path estimate
    # A line that stayed this far below what we sent, for longer than the echo's reach,
    # bounds the echo (no path to learn): sound above that bound + margin is the caller,
    # however loud we are, so a soft barge-in onset is not taken for our echo.
    quiet_line_erl_db: float = 20.0


class BargeInSettings(msgspec.Struct, **_STRICT):
    # Pause playout as soon as one VAD window is this likely speech (reversible: resume if
    # it turns out to be a cough or a backchannel).
    pause_probability: float = 0.6
    # Even faster: an inbound packet this much louder than the line's noise floor
    # (conversation/line_level.py), and at least energy_pause_rms (int16; 100 ~ -50 dBFS),
    # that no echo of ours explains pauses at once, at its arrival (before the jitter buffer
    # and the VAD). energy_pause_rms 0 disables.
    energy_pause_rms: float = 100.0
    energy_pause_rise_db: float = 12.0
    # A pause that no VAD speech start confirms within this long is undone.
    unconfirmed_resume_ms: int = 250


class ModelTimeoutSettings(msgspec.Struct, **_STRICT):
    """Hard limits on every model stream a reply waits for. A stream quiet for longer is
    cancelled and counted (CallRecord.model_timeouts), and the caller hears the pre-rendered
    emergency phrase and goes to a human instead of silence. Defaults sit well above what
    2 busy CPU cores measured (LLM first token p95 0.63 s, TTS first chunk p50 0.9 s, STT
    ~0.4 s; `theo bench models`) and above a loaded plane's queueing, so that only a stuck
    model trips them; a GPU cluster can set them much tighter."""

    stt_s: float = 15.0  # a whole transcription (final or partial)
    llm_first_token_s: float = 12.0
    # With `llm.fallback` configured: the first token the primary model gets before the reply
    # goes to the fallback model (its own first token then has llm_first_token_s).
    llm_fallback_after_s: float = 3.0
    llm_token_gap_s: float = 6.0
    tts_first_chunk_s: float = 10.0
    tts_chunk_gap_s: float = 6.0

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            if getattr(self, name) <= 0:
                raise ConfigError(f"conversation.timeouts.{name}", f"must be > 0, got {getattr(self, name)}")


class SilenceSettings(msgspec.Struct, **_STRICT):
    """Mutual silence: neither the caller nor the agent has made a sound."""

    # After this much of it, a short reprompt ("Você ainda tá aí?"); 0 disables.
    reprompt_after_s: float = 6.0
    # Reprompts before giving up; then a goodbye and `then`.
    reprompts: int = 1
    then: Literal["hangup", "transfer"] = "hangup"

    def __post_init__(self) -> None:
        if self.reprompt_after_s < 0 or self.reprompts < 0:
            raise ConfigError("conversation.silence", "reprompt_after_s and reprompts must be >= 0")


class ConversationSettings(msgspec.Struct, **_STRICT):
    # "agent": the full turn loop; "echo": plays the caller's audio back (media benchmark).
    mode: Literal["agent", "echo"] = "agent"
    # "streaming": LLM sentences go to TTS and TTS chunks to the line as they come.
    # "sequential": the batch baseline `theo bench pipeline` compares against — whole LLM
    # reply, then whole TTS, then play (no fillers).
    pipeline: Literal["streaming", "sequential"] = "streaming"
    # "Como posso" rather than "Em que posso": the latter reached the caller's Whisper as "Enque".
    greeting: str = "Olá! Aqui é a Theo. Como posso te ajudar?"
    # Re-run STT on the growing utterance after this much new audio (partials).
    partial_interval_ms: int = 700
    # Audio kept from before the VAD start so the first syllable is not cut.
    preroll_ms: int = 300
    # Comfort noise whenever Theo is silent (THINKING included) comes from the media layer
    # (media.idle_fill_dbfs); a filler plays after turn.fillers.delay_ms without agent audio.
    # Backchannel ("uhum") in a pause of a caller turn longer than this (0 disables).
    backchannel_after_speech_ms: int = 6000
    backchannel_pause_ms: int = 350
    llm_max_tokens: int = 120
    # Replies of at least this many tokens (0 = the model decides). `theo bench pipeline` sets
    # it (and llm_max_tokens) in both of its modes so that they answer at the same length.
    llm_min_tokens: int = 0
    llm_temperature: float = 0.3
    timeouts: ModelTimeoutSettings = msgspec.field(default_factory=ModelTimeoutSettings)
    silence: SilenceSettings = msgspec.field(default_factory=SilenceSettings)
    max_call_seconds: float = 1800.0
    # No caller packet for this long while media is expected (not on hold): the call is gone
    # on the PBX side without a BYE; hang up (0 disables).
    no_media_hangup_s: float = 30.0
    # A final transcript less sure than this (Whisper's avg_logprob, duration-weighted) is not
    # answered: the caller is asked to repeat, once in a row. 0 or above disables it.
    low_confidence_logprob: float = -1.0
    # What the agent just asked (its last question, else the tail of what it said, at most
    # stt_hint_max_chars) goes with every transcription of the caller's answer as the STT
    # hint, with a digits cue after a question asking for digits (stt_hint.py). `theo bench
    # stt` on the answers the corpus knows the question of (2 Kokoro voices, clean G.711,
    # beam 5): WER 8.3 % -> 6.5 %, meaning lost 36 % -> 29 %, for 1.4-2x the time per
    # transcription (README, *Caller understanding*). 20 of those 21 answers were
    # dictations, and "digits" (the default) keeps the hint for exactly those: WER 7.4 %.
    # Elsewhere a hint costs time on every turn's final (the greeting's question as the hint:
    # 404 -> 709 ms per transcription of a short answer, measured in process), and it can cut
    # a long answer short (an 18 s complaint decoded as its first sentence; the backend then
    # decodes again without it). "always": every answer (it kept "Então é que assim." whole
    # for the endpointer's thinking rule in `theo bench turn-taking`); "off": never.
    stt_hint: Literal["always", "digits", "off"] = "digits"
    stt_hint_max_chars: int = 160
    # A dictated number (a run of at least readback_min_digits digits: CPF, phone, protocol,
    # CEP; not money) with a word heard at a probability under this is read back for
    # confirmation ("Só confirmando: …. Está certo?") instead of answered (readback.py); at
    # most readback_max_in_a_row times in a row. 0 disables. 0.7: with Whisper base every
    # dictation `theo bench stt` got wrong (27 of 60) had a digit under it, and so did the
    # right ones (its digit probabilities do not tell them apart: under 0.5, 19 of the 27
    # wrong and 25 of the 33 right), so on the CPU default nearly every dictated number is
    # read back; a surer model (large-v3 on GPU) reads back only the unsure ones.
    readback_word_probability: float = 0.7
    readback_min_digits: int = 4
    readback_max_in_a_row: int = 2
    turn: TurnSettings = msgspec.field(default_factory=TurnSettings)
    # The caller's DTMF keys: entries (what they typed) and shortcuts ("0" -> a human).
    keypad: KeypadSettings = msgspec.field(default_factory=KeypadSettings)
    echo_gate: EchoGateSettings = msgspec.field(default_factory=EchoGateSettings)
    barge_in: BargeInSettings = msgspec.field(default_factory=BargeInSettings)

    def __post_init__(self) -> None:
        if not 0.0 <= self.readback_word_probability <= 1.0:
            raise ConfigError("conversation.readback_word_probability",
                              f"must be 0..1, got {self.readback_word_probability}")
        if self.readback_min_digits < 1 or self.readback_max_in_a_row < 0 or self.stt_hint_max_chars < 0:
            raise ConfigError("conversation.readback_min_digits",
                              "readback_min_digits must be >= 1, readback_max_in_a_row and stt_hint_max_chars >= 0")
        if not 0 <= self.llm_min_tokens <= self.llm_max_tokens:
            raise ConfigError(
                "conversation.llm_min_tokens",
                f"must be 0..llm_max_tokens ({self.llm_max_tokens}), got {self.llm_min_tokens}",
            )
