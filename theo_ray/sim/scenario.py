"""Caller scenarios: what a simulated caller says and does, and what it expects to hear.

A scenario is a YAML file decoded into typed Structs. Each step has an ``action`` tag:

- ``say``        an utterance: ``text`` to synthesise, a ``wav`` file, or ``parts`` spoken with
                 ``pause_ms`` of silence between them (dictation: a CPF read in groups);
- ``wait_agent`` wait until the agent's audio ``starts`` or ``ends`` (ended = no agent audio for
                 ``settle_ms``), giving up after ``timeout_ms``;
- ``barge_in``   once the agent's audio of turn ``agent_turn`` has played ``after_ms``, speak the
                 utterance over it; ``expect_agent`` says whether the agent must stop (an interruption)
                 or keep talking (a backchannel such as "uhum"); ``min_turn_ms`` skips agent turns
                 that end sooner (a filler played before the answer);
- ``dtmf``       send digits;
- ``silence``    say nothing for ``ms``;
- ``hangup``     end the call.

``expect`` holds the checks run on the finished call (words the agent must say, a transfer,
latency ceilings); ``labels`` are free-form strings for the tools that group or judge
scenarios (the turn-taking benchmark reads ``category``, ``line``, ``impaired``, see
theo_ray/bench/turn_taking_bench.py). Decoding errors raise
:class:`theo_ray.errors.ConfigError` whose ``key`` is the path of the offending key
(``steps[2].txt``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import msgspec
import msgspec.yaml

from theo_ray.errors import ConfigError

_DTMF_DIGITS = re.compile(r"^[0-9*#A-Da-d]+$")


class UtterancePart(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One spoken piece of a dictated utterance; ``pause_after_ms`` overrides the utterance's ``pause_ms``."""

    text: str = ""
    wav: str = ""
    pause_after_ms: int | None = None

    def __post_init__(self) -> None:
        if bool(self.text) == bool(self.wav):
            raise ValueError("an utterance part needs exactly one of `text` or `wav`")
        if self.pause_after_ms is not None and self.pause_after_ms < 0:
            raise ValueError("`pause_after_ms` must be >= 0")


class Utterance(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Something the caller says: exactly one of ``text``, ``wav`` or ``parts``."""

    text: str = ""
    wav: str = ""
    # A bare string in YAML is a text part.
    parts: list[str | UtterancePart] = []
    pause_ms: int = 1200
    # Labels the utterance in the recording's events and the report.
    id: str = ""

    def __post_init__(self) -> None:
        given = [name for name in ("text", "wav", "parts") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(f"an utterance needs exactly one of `text`, `wav` or `parts` (got {given or 'none'})")
        if self.pause_ms < 0:
            raise ValueError("`pause_ms` must be >= 0")
        for part in self.parts:
            if isinstance(part, str) and not part.strip():
                raise ValueError("an utterance part is empty")

    def pieces(self) -> list[tuple[UtterancePart, int]]:
        """The utterance as (part, silence after it in ms); the last part has no pause after it."""
        if self.text:
            return [(UtterancePart(text=self.text), 0)]
        if self.wav:
            return [(UtterancePart(wav=self.wav), 0)]
        parts = [UtterancePart(text=p) if isinstance(p, str) else p for p in self.parts]
        out: list[tuple[UtterancePart, int]] = []
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            pause = 0 if last else (part.pause_after_ms if part.pause_after_ms is not None else self.pause_ms)
            out.append((part, pause))
        return out

    def spoken_text(self) -> str:
        """The words of the utterance (empty for WAV-only parts), for repeat detection and reports."""
        if self.text:
            return self.text
        return " ".join(p if isinstance(p, str) else p.text for p in self.parts).strip()


class Say(Utterance, tag="say", tag_field="action"):
    """The caller speaks (after the previous step finished)."""


class WaitAgent(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, tag="wait_agent", tag_field="action"):
    """Wait for the agent's audio to start, or to end (no agent audio for ``settle_ms``)."""

    until: Literal["starts", "ends"] = "ends"
    timeout_ms: int = 15000
    # Pauses between the agent's sentences are shorter than this; a longer quiet means its turn is over.
    settle_ms: int = 900
    # "ends" counts only once the agent has talked this long in this wait: a caller waits for
    # the answer, not for the "hum…" filler (~0.5 s) that may come before it.
    min_speech_ms: int = 0

    def __post_init__(self) -> None:
        if self.timeout_ms <= 0:
            raise ValueError("`timeout_ms` must be > 0")
        if self.settle_ms < 0:
            raise ValueError("`settle_ms` must be >= 0")
        if self.min_speech_ms < 0:
            raise ValueError("`min_speech_ms` must be >= 0")


class BargeIn(Utterance, tag="barge_in", tag_field="action"):
    """Speak over the agent once its audio of turn ``agent_turn`` has played ``after_ms``.

    Agent turns count from 1 (the greeting is turn 1); ``agent_turn`` None means the next agent
    turn to start after this step begins, ``same`` the turn the previous ``barge_in`` spoke
    into (several backchannels at several points of one answer). ``expect_agent`` is what the
    agent must do: ``stops`` (an interruption) or ``continues`` (a backchannel that must not
    interrupt it).
    """

    after_ms: int = 800
    agent_turn: int | Literal["same"] | None = None
    timeout_ms: int = 15000
    expect_agent: Literal["stops", "continues"] = "stops"
    # An agent turn that ends before it has played this long (a "Um momento só." filler
    # before the answer) is skipped: the caller speaks into the next one. 0: no skipping.
    min_turn_ms: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.after_ms < 0:
            raise ValueError("`after_ms` must be >= 0")
        if not 0 <= self.min_turn_ms <= self.after_ms:
            raise ValueError("`min_turn_ms` must be 0..`after_ms`")
        if isinstance(self.agent_turn, int) and self.agent_turn < 1:
            raise ValueError("`agent_turn` counts from 1")
        if self.timeout_ms <= 0:
            raise ValueError("`timeout_ms` must be > 0")


class Dtmf(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, tag="dtmf", tag_field="action"):
    """Send DTMF digits (RFC 4733 events), one every ``interval_ms``."""

    digits: str
    duration_ms: int = 100
    interval_ms: int = 200

    def __post_init__(self) -> None:
        if not _DTMF_DIGITS.match(self.digits):
            raise ValueError(f"`digits` must be 0-9, *, # or A-D (got {self.digits!r})")
        if self.duration_ms <= 0 or self.interval_ms < self.duration_ms:
            raise ValueError("need 0 < `duration_ms` <= `interval_ms`")


class Silence(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, tag="silence", tag_field="action"):
    """The caller stays silent for ``ms`` (the line stays open)."""

    ms: int

    def __post_init__(self) -> None:
        if self.ms <= 0:
            raise ValueError("`ms` must be > 0")


class Hangup(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, tag="hangup", tag_field="action"):
    """The caller hangs up after ``after_ms``."""

    after_ms: int = 0

    def __post_init__(self) -> None:
        if self.after_ms < 0:
            raise ValueError("`after_ms` must be >= 0")


Step = Say | WaitAgent | BargeIn | Dtmf | Silence | Hangup


class AgentSays(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The agent's words must match ``pattern`` (a case-insensitive regex) in agent turn ``turn``
    (counted from 1, the greeting is 1), or anywhere in the call when ``turn`` is None."""

    pattern: str
    turn: int | None = None

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"`pattern` is not a valid regex: {exc}") from None
        if self.turn is not None and self.turn < 1:
            raise ValueError("`turn` counts from 1")


class Expectations(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Checks on the finished call; unset fields are not checked."""

    agent_says: list[AgentSays] = []
    # True: the call must end in a transfer; False: it must not; None: either.
    transfer: bool | None = None
    # Each caller turn's end of speech -> first agent audio must stay under this.
    max_first_audio_ms: int | None = None
    # Each interruption's caller onset -> agent audio stop must stay under this.
    max_barge_in_reaction_ms: int | None = None
    # No stretch with both sides silent may last longer than this.
    max_silence_ms: int | None = None


class Scenario(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A scripted call. ``target`` overrides the simulator's default dial target (a SIP URI)."""

    name: str
    steps: list[Step]
    description: str = ""
    target: str | None = None
    expect: Expectations = Expectations()
    # Hard cap on the call's length: the simulator hangs up when it is reached.
    max_duration_s: float = 120.0
    # Free-form labels for tools that group or judge scenarios (not used by the simulator).
    labels: dict[str, str] = {}

    def __post_init__(self) -> None:
        if not re.match(r"^[a-z0-9][a-z0-9_-]*$", self.name):
            raise ValueError("`name` must be lowercase letters, digits, '_' or '-'")
        if not self.steps:
            raise ValueError("`steps` is empty")
        if self.max_duration_s <= 0:
            raise ValueError("`max_duration_s` must be > 0")

    def utterances(self) -> list[Utterance]:
        """Every utterance of the scenario in order (``say`` and ``barge_in`` steps)."""
        return [s for s in self.steps if isinstance(s, Utterance)]

    def labelled_utterances(self) -> list[tuple[str, Utterance]]:
        """(label, utterance) in order; the label marks the utterance in the recording's events."""
        return [(utterance_label(i, s), s) for i, s in enumerate(self.steps) if isinstance(s, Utterance)]

    def wav_paths(self) -> list[str]:
        """Every WAV file the scenario plays, as written in the file."""
        out: list[str] = []
        for utt in self.utterances():
            out.extend(part.wav for part, _ in utt.pieces() if part.wav)
        return out


def utterance_label(step_index: int, utterance: Utterance) -> str:
    """The utterance's ``id``, or ``step<N>`` (N = its 0-based step index) when it has none."""
    return utterance.id or f"step{step_index}"


def _config_error(exc: msgspec.MsgspecError, source: str) -> ConfigError:
    """Turn msgspec's message into a ConfigError keyed by the offending path (``steps[0].txt``)."""
    message = str(exc)
    problem, _, where = message.partition(" - at `$")
    path = where.rstrip("`").lstrip(".") if where else ""
    named = re.match(r"Object (?:contains unknown|missing required) field `([^`]+)`", problem)
    if named:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return ConfigError(path or source, f"{problem} (in {source})")


def decode_scenario(data: bytes | str, source: str = "<scenario>") -> Scenario:
    """Decode scenario YAML; raises ConfigError naming the bad key."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        return msgspec.yaml.decode(raw, type=Scenario)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise _config_error(exc, source) from None


def encode_scenario(scenario: Scenario) -> bytes:
    """Scenario back to YAML (defaults left out); ``decode_scenario`` reads it back unchanged."""
    return msgspec.yaml.encode(scenario)


def load_scenario(path: str | Path, resolve_wavs: bool = True) -> Scenario:
    """Read a scenario file; WAV paths are made absolute relative to the file's folder."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read scenario: {exc.strerror}") from None
    scenario = decode_scenario(data, source=str(path))
    return resolve_wav_paths(scenario, path.parent) if resolve_wavs else scenario


def resolve_wav_paths(scenario: Scenario, base_dir: Path) -> Scenario:
    """A copy of the scenario whose WAV paths are absolute (relative ones taken from ``base_dir``)."""

    def resolve(wav: str) -> str:
        return wav if not wav or Path(wav).is_absolute() else str((base_dir / wav).resolve())

    def fix(utt: Utterance) -> Utterance:
        parts = [
            p if isinstance(p, str) else msgspec.structs.replace(p, wav=resolve(p.wav)) for p in utt.parts
        ]
        return msgspec.structs.replace(utt, wav=resolve(utt.wav), parts=parts)

    steps = [fix(s) if isinstance(s, Utterance) else s for s in scenario.steps]
    return msgspec.structs.replace(scenario, steps=steps)


def load_scenarios(folder: str | Path) -> list[Scenario]:
    """Every ``*.yaml`` scenario in a folder, sorted by file name."""
    return [load_scenario(p) for p in sorted(Path(folder).glob("*.yaml"))]
