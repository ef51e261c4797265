"""Request validation shared by the deployments: bad input becomes a typed InvalidRequest.

Checked before any model work so a malformed request never reaches (or wedges) a model.
"""

from __future__ import annotations

import math
import re

import numpy as np

from theo_ray.errors import InvalidRequest
from theo_ray.messages import GenerateRequest, SynthesizeRequest, TranscribeRequest

STT_RATE = 16000
MAX_AUDIO_SECONDS = 120.0
_TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")


def audio_from_request(req: TranscribeRequest) -> np.ndarray:
    """Validated float32 [-1, 1] samples of a transcription request."""
    if not isinstance(req, TranscribeRequest):
        raise InvalidRequest("request", f"expected TranscribeRequest, got {type(req).__name__}")
    if req.sample_rate != STT_RATE:
        raise InvalidRequest("sample_rate", f"must be {STT_RATE} Hz (resample at the media edge), got {req.sample_rate}")
    if not req.audio:
        raise InvalidRequest("audio", "empty")
    if len(req.audio) % 2:
        raise InvalidRequest("audio", "odd byte count: expected int16 little-endian PCM")
    samples = np.frombuffer(req.audio, dtype="<i2")
    if len(samples) > MAX_AUDIO_SECONDS * STT_RATE:
        raise InvalidRequest("audio", f"longer than {MAX_AUDIO_SECONDS:.0f} s")
    return samples.astype(np.float32) / 32768.0


def float_audio_from_request(samples: np.ndarray) -> np.ndarray:
    """Reject NaN/inf in float audio handed over by in-process callers (tests, bench)."""
    if not np.all(np.isfinite(samples)):
        raise InvalidRequest("audio", "contains NaN or infinite samples")
    return samples


def check_generate(req: GenerateRequest) -> None:
    if not isinstance(req, GenerateRequest):
        raise InvalidRequest("request", f"expected GenerateRequest, got {type(req).__name__}")
    if not req.messages:
        raise InvalidRequest("messages", "empty")
    if req.messages[-1].role not in ("user", "tool", "system"):
        raise InvalidRequest("messages", "the last message must be from the user, a tool or the system")
    for i, message in enumerate(req.messages):
        if message.role not in ("system", "user", "assistant", "tool"):
            raise InvalidRequest(f"messages[{i}].role", f"unknown role {message.role!r}")
        if not isinstance(message.content, str):
            raise InvalidRequest(f"messages[{i}].content", "must be a string")
    names = set()
    for i, tool in enumerate(req.tools):
        if not _TOOL_NAME.match(tool.name or ""):
            raise InvalidRequest(f"tools[{i}].name", f"{tool.name!r} is not a valid tool name")
        if tool.name in names:
            raise InvalidRequest(f"tools[{i}].name", f"duplicate tool {tool.name!r}")
        names.add(tool.name)
        params = tool.parameters
        if params and (params.get("type") != "object" or not isinstance(params.get("properties", {}), dict)):
            raise InvalidRequest(f"tools[{i}].parameters", "must be a JSON Schema of type 'object' with 'properties'")
    if not 1 <= req.max_tokens <= 4096:
        raise InvalidRequest("max_tokens", f"must be 1..4096, got {req.max_tokens}")
    if not 0 <= req.min_tokens <= req.max_tokens:
        raise InvalidRequest("min_tokens", f"must be 0..max_tokens ({req.max_tokens}), got {req.min_tokens}")
    if not (0.0 <= req.temperature <= 2.0) or math.isnan(req.temperature):
        raise InvalidRequest("temperature", f"must be 0..2, got {req.temperature}")


def check_synthesize(req: SynthesizeRequest, max_chars: int) -> str:
    """The text to speak, stripped; typed errors for empty or oversized text."""
    if not isinstance(req, SynthesizeRequest):
        raise InvalidRequest("request", f"expected SynthesizeRequest, got {type(req).__name__}")
    text = (req.text or "").strip()
    if not text:
        raise InvalidRequest("text", "empty")
    if len(text) > max_chars:
        raise InvalidRequest("text", f"{len(text)} characters; at most {max_chars} per request (split it)")
    if req.speed and not (0.5 <= req.speed <= 2.0):
        raise InvalidRequest("speed", f"must be 0.5..2.0, got {req.speed}")
    return text
