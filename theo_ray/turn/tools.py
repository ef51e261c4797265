"""Tools the model may call: the registry (schemas, argument validation, which tools wait for
speech to drain) and a streaming parser for tool calls that models write inline as text.

Arguments are validated with ``jsonschema`` (a well-kept library; the schemas are JSON Schema
already, as the LLM sees them). A bad call is never raised: it comes back as a
`RejectedToolCall` with a message the turn loop can hand to the model as the tool result, and it
is counted.
"""

from __future__ import annotations

import itertools
from typing import Any

import jsonschema
import msgspec

from theo_ray.errors import ConfigError
from theo_ray.messages import ToolCall, ToolSchema
from theo_ray.turn.settings import ToolSettings

TRANSFER_CALL = "transfer_call"
END_CALL = "end_call"
SEND_DTMF = "send_dtmf"


class RegisteredTool(msgspec.Struct, frozen=True):
    schema: ToolSchema
    after_speech: bool  # run only once the speech before it has been played out ("drained")
    builtin: bool


class AcceptedToolCall(msgspec.Struct, frozen=True):
    call: ToolCall
    after_speech: bool


class RejectedToolCall(msgspec.Struct, frozen=True):
    call: ToolCall
    error: str  # technical message (English), handed to the model as the tool result


class ToolRegistryStats(msgspec.Struct):
    accepted: int = 0
    rejected: int = 0
    rejected_unknown_tool: int = 0
    rejected_bad_arguments: int = 0
    rejected_too_large: int = 0  # arguments over tools.max_argument_bytes as JSON


def _builtin_tools(settings: ToolSettings) -> list[RegisteredTool]:
    destinations = sorted(settings.transfer_destinations)
    described = "; ".join(f"{k}: {v}" for k, v in sorted(settings.transfer_destinations.items()))
    transfer = ToolSchema(
        name=TRANSFER_CALL,
        description=(
            "Transfere a ligação para outro setor. Antes de chamar, diga ao cliente para onde "
            f"e por quê. Destinos: {described}."
        ),
        parameters={
            "type": "object",
            "properties": {
                "destination": {"type": "string", "enum": destinations,
                                "description": "Setor de destino."},
                "reason": {"type": "string", "minLength": 1,
                           "description": "Motivo da transferência, em poucas palavras."},
            },
            "required": ["destination", "reason"],
            "additionalProperties": False,
        },
    )
    end = ToolSchema(
        name=END_CALL,
        description="Encerra a ligação depois da despedida, quando o cliente não precisa de mais nada.",
        parameters={
            "type": "object",
            "properties": {"reason": {"type": "string", "minLength": 1,
                                      "description": "Por que a ligação termina."}},
            "required": ["reason"],
            "additionalProperties": False,
        },
    )
    builtin = [RegisteredTool(transfer, True, True), RegisteredTool(end, True, True)]
    if settings.send_dtmf:
        keys = ToolSchema(
            name=SEND_DTMF,
            description=(
                "Digita teclas no telefone (tons DTMF) para navegar num menu automático do outro "
                "lado, depois do que você disser antes."
            ),
            parameters={
                "type": "object",
                "properties": {"digits": {"type": "string", "pattern": "^[0-9*#A-D]{1,32}$",
                                          "description": "As teclas, em ordem: 0-9, * e #."}},
                "required": ["digits"],
                "additionalProperties": False,
            },
        )
        builtin.append(RegisteredTool(keys, True, True))
    return builtin


class ToolRegistry:
    def __init__(self, settings: ToolSettings | None = None) -> None:
        self.settings = settings or ToolSettings()
        if not self.settings.transfer_destinations:
            raise ConfigError("tools.transfer_destinations", "at least one destination is needed")
        self._tools: dict[str, RegisteredTool] = {}
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        for tool in _builtin_tools(self.settings):
            self._add(tool)
        for i, declared in enumerate(self.settings.tools):
            if declared.name in self._tools:
                raise ConfigError(f"tools.tools[{i}].name", f"'{declared.name}' already exists")
            schema = ToolSchema(declared.name, declared.description, dict(declared.parameters))
            try:
                jsonschema.Draft202012Validator.check_schema(schema.parameters)
            except jsonschema.SchemaError as exc:
                raise ConfigError(f"tools.tools[{i}].parameters", exc.message) from exc
            self._add(RegisteredTool(schema, declared.after_speech, False))
        self.stats = ToolRegistryStats()

    def _add(self, tool: RegisteredTool) -> None:
        self._tools[tool.schema.name] = tool
        self._validators[tool.schema.name] = jsonschema.Draft202012Validator(tool.schema.parameters)

    def schemas(self) -> list[ToolSchema]:
        """What goes into `GenerateRequest.tools`."""
        return [t.schema for t in self._tools.values()]

    def get(self, name: str) -> RegisteredTool | None:
        return self._tools.get(name)

    def is_after_speech(self, name: str) -> bool:
        tool = self._tools.get(name)
        return bool(tool and tool.after_speech)

    def check(self, call: ToolCall) -> AcceptedToolCall | RejectedToolCall:
        """Validate a model's tool call; never raises on bad model output."""
        tool = self._tools.get(call.name)
        if tool is None:
            self.stats.rejected += 1
            self.stats.rejected_unknown_tool += 1
            known = ", ".join(self._tools)
            return RejectedToolCall(call, f"unknown tool '{call.name}'; available: {known}")
        arguments: Any = call.arguments
        try:
            size = len(msgspec.json.encode(arguments))
        except (TypeError, msgspec.EncodeError):
            size = 0  # not JSON: the schema validation below names what is wrong
        if size > self.settings.max_argument_bytes:  # before validation: its cost grows with them
            self.stats.rejected += 1
            self.stats.rejected_too_large += 1
            return RejectedToolCall(call, f"arguments for '{call.name}' too large: {size} bytes "
                                          f"(at most {self.settings.max_argument_bytes})")
        errors = sorted(self._validators[call.name].iter_errors(arguments), key=lambda e: e.path)
        if errors:
            self.stats.rejected += 1
            self.stats.rejected_bad_arguments += 1
            detail = "; ".join(
                f"{'/'.join(map(str, e.path)) or 'arguments'}: {e.message}" for e in errors[:3]
            )
            return RejectedToolCall(call, f"invalid arguments for '{call.name}': {detail}")
        self.stats.accepted += 1
        return AcceptedToolCall(call, tool.after_speech)


# ---------------------------------------------------------------------- inline tool calls


class MalformedToolCall(msgspec.Struct, frozen=True):
    """Text between tool-call tags that is not a valid call; never spoken."""

    raw: str
    error: str


class ToolCallParserStats(msgspec.Struct):
    tool_calls: int = 0
    malformed: int = 0


ParsedPiece = str | ToolCall | MalformedToolCall


class ToolCallParser:
    """Split a streamed reply into speakable text and tool calls written inline as
    ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (Hermes / Qwen style).

    Text that might be the start of a tag is held back until it is known not to be one, so
    no part of the JSON ever reaches TTS. Small models also write the call's JSON bare,
    without the tags (Qwen2.5-1.5B does, sometimes with doubled braces): a ``{`` in the
    reply opens a block that ends when its braces balance and is parsed the same way, and a
    brace block that is no tool call is dropped as malformed — braces are never spoken.
    """

    def __init__(self, open_tag: str = "<tool_call>", close_tag: str = "</tool_call>",
                 id_prefix: str = "call_") -> None:
        self.open_tag = open_tag
        self.close_tag = close_tag
        self._ids = (f"{id_prefix}{i}" for i in itertools.count(1))
        self._buffer = ""
        self._inside = False
        self._bare = False  # inside a bare ``{...}`` block rather than a tag
        self._after_bare = False  # drop the stray closing braces of a doubled-brace block
        self.stats = ToolCallParserStats()

    def feed(self, delta: str) -> list[ParsedPiece]:
        self._buffer += delta
        out: list[ParsedPiece] = []
        while True:
            if self._after_bare:
                stripped = self._buffer.lstrip("}")
                if not stripped:
                    self._buffer = ""
                    break
                self._buffer, self._after_bare = stripped, False
            if self._bare:
                end = _balanced_end(self._buffer)
                if end < 0:
                    break
                out.append(self._parse(self._buffer[:end]))
                self._buffer = self._buffer[end:]
                self._bare, self._after_bare = False, True
                continue
            if self._inside:
                end = self._buffer.find(self.close_tag)
                if end < 0:
                    break
                out.append(self._parse(self._buffer[:end]))
                self._buffer = self._buffer[end + len(self.close_tag) :]
                self._inside = False
                continue
            start = self._buffer.find(self.open_tag)
            brace = self._buffer.find("{")
            if brace >= 0 and (start < 0 or brace < start):
                if brace:
                    out.append(self._buffer[:brace])
                self._buffer = self._buffer[brace:]
                self._bare = True
                continue
            if start >= 0:
                if start:
                    out.append(self._buffer[:start])
                self._buffer = self._buffer[start + len(self.open_tag) :]
                self._inside = True
                continue
            keep = _partial_tag_suffix(self._buffer, self.open_tag)
            text = self._buffer[: len(self._buffer) - keep]
            if text:
                out.append(text)
            self._buffer = self._buffer[len(text) :]
            break
        return out

    def flush(self) -> list[ParsedPiece]:
        """End of stream. An unclosed tag is still parsed (models often stop before closing)."""
        rest, inside = self._buffer, self._inside or self._bare
        self._buffer, self._inside, self._bare, self._after_bare = "", False, False, False
        if inside:
            return [self._parse(rest)] if rest.strip() else []
        return [rest] if rest else []

    def _parse(self, raw: str) -> ToolCall | MalformedToolCall:
        try:
            data = _decode_object(raw)
            if not isinstance(data, dict) or not isinstance(data.get("name"), str):
                raise ValueError("expected an object with a string 'name'")
            arguments = data.get("arguments", data.get("parameters", {}))
            if isinstance(arguments, str):  # OpenAI style: arguments as a JSON string
                arguments = msgspec.json.decode(arguments.encode()) if arguments.strip() else {}
            if not isinstance(arguments, dict):
                raise ValueError("'arguments' must be an object")
        except (msgspec.DecodeError, ValueError) as exc:
            self.stats.malformed += 1
            return MalformedToolCall(raw, str(exc))
        self.stats.tool_calls += 1
        call_id = data.get("id") if isinstance(data.get("id"), str) else next(self._ids)
        return ToolCall(id=call_id, name=data["name"], arguments=arguments)


def _decode_object(raw: str) -> object:
    """JSON of a tool call; doubled outer braces (``{{...}}``) are undone one level at a time."""
    text = raw.strip()
    while True:
        try:
            return msgspec.json.decode(text.encode())
        except msgspec.DecodeError:
            if not (text.startswith("{{") and text.endswith("}")):
                raise
            text = text[1:-1].strip() if text.endswith("}}") else text[1:].strip()


def _balanced_end(text: str) -> int:
    """Index just past the ``}`` that closes the ``{`` at text[0]; -1 while still open.
    Braces inside JSON strings do not count."""
    depth, in_string, escaped = 0, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return -1


def _partial_tag_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(text), len(tag) - 1), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0
