"""ScriptedBackend — a deterministic language-model TEST DOUBLE for behaviour the packaged
tiny model cannot produce (a tool call, a fixed long answer to interrupt).

It is not a model: rules (regex on the last user message -> reply text and optional tool
call) come from a TOML script. It goes through the same LanguageModel deployment, the same
streaming, the same tool-call parsing (it emits hermes ``<tool_call>`` text exactly as a
model would) and the same abort accounting, at a configurable per-word delay.
"""

from __future__ import annotations

import asyncio
import json
import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec

from theo_ray.config import LanguageModelSettings
from theo_ray.errors import ConfigError
from theo_ray.messages import GenerateRequest


class ScriptRule(msgspec.Struct, forbid_unknown_fields=True):
    match: str
    reply: str
    tool: str = ""
    arguments: dict[str, Any] = {}
    # Seconds before the first word: a slow or hung model, for fault injection (`theo bench
    # faults`, the failover tests) through the real deployment path.
    delay_s: float = 0.0


class Script(msgspec.Struct, forbid_unknown_fields=True):
    rule: list[ScriptRule] = []
    default_reply: str = "Desculpa, não peguei bem. Pode repetir, por favor?"


def load_script(path: str) -> Script:
    if not path:
        return Script()
    try:
        return msgspec.convert(tomllib.loads(Path(path).expanduser().read_text(encoding="utf-8")), Script)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ConfigError("llm.script", f"{path}: {exc}") from exc


class ScriptedBackend:
    name = "scripted"

    def __init__(self, settings: LanguageModelSettings, cache_dir: Path) -> None:
        self.settings = settings
        self.script = load_script(settings.script)
        self.model_path = f"scripted:{settings.script or 'default'}"
        self._rules = [(re.compile(r.match, re.IGNORECASE), r) for r in self.script.rule]
        self._active: dict[str, asyncio.Event] = {}

    def render_prompt(self, req: GenerateRequest) -> str:
        return "\n".join(f"{m.role}: {m.content}" for m in req.messages)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _reply_for(self, req: GenerateRequest) -> tuple[str, float]:
        """The reply's text and the delay before its first word."""
        last_user = next((m.content for m in reversed(req.messages) if m.role == "user"), "")
        for pattern, rule in self._rules:
            if pattern.search(last_user):
                text = rule.reply
                if rule.tool:
                    call = json.dumps({"name": rule.tool, "arguments": rule.arguments}, ensure_ascii=False)
                    text += f"<tool_call>{call}</tool_call>"
                return text, rule.delay_s
        return self.script.default_reply, 0.0

    async def stream(self, req: GenerateRequest, request_id: str) -> AsyncIterator[tuple[str, str | None, int]]:
        aborted = self._active.setdefault(request_id, asyncio.Event())
        text, first_delay = self._reply_for(req)
        pieces = re.findall(r"\S+\s*|\s+", text)
        delay = self.settings.scripted_token_delay_ms / 1000
        try:
            if first_delay:
                try:  # an abort ends the wait at once, as it ends a real engine's request
                    await asyncio.wait_for(aborted.wait(), first_delay)
                    return
                except asyncio.TimeoutError:
                    pass
            for n, piece in enumerate(pieces[: req.max_tokens], start=1):
                if aborted.is_set():
                    return
                await asyncio.sleep(delay)
                last = n == len(pieces) or n == req.max_tokens
                yield piece, ("stop" if n == len(pieces) else "length") if last else None, n
        finally:
            self._active.pop(request_id, None)

    async def abort(self, request_id: str) -> None:
        event = self._active.get(request_id)
        if event:
            event.set()

    def unfinished(self) -> int:
        return len(self._active)

    def shutdown(self) -> None:
        self._active.clear()
