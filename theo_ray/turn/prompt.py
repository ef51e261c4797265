"""System prompt: the versioned pt-BR persona file with the deployment's names filled in.

The file's first line is ``<!-- version: N -->``; the version travels with each call's trace so
a behaviour change can be tied to a prompt change. Placeholders are ``{{name}}`` (not
``str.format``: a persona may contain braces) and every one of them must be filled.
"""

from __future__ import annotations

import re
from pathlib import Path

from theo_ray.errors import ConfigError
from theo_ray.turn.settings import PromptSettings

_PROMPTS = Path(__file__).resolve().parent.parent / "prompts"
PACKAGED_PERSONA = _PROMPTS / "persona_ptbr.md"
PACKAGED_PERSONAS = {"full": PACKAGED_PERSONA, "compact": _PROMPTS / "persona_ptbr_compact.md"}
_VERSION_LINE = re.compile(r"^\s*<!--\s*version:\s*(\S+)\s*-->\s*$")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class PromptBuilder:
    def __init__(self, settings: PromptSettings | None = None) -> None:
        self.settings = settings or PromptSettings()
        packaged = PACKAGED_PERSONAS[self.settings.persona]
        self.path = Path(self.settings.path).expanduser() if self.settings.path else packaged
        try:
            raw = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError("prompt.path", f"cannot read {self.path}: {exc}") from exc
        first, _, body = raw.partition("\n")
        match = _VERSION_LINE.match(first)
        if match is None:
            raise ConfigError("prompt.path", f"{self.path} must start with '<!-- version: N -->'")
        self.version = match.group(1)
        self.template = body.strip()

    def build(self, transfer_destinations: dict[str, str] | None = None) -> str:
        """The system prompt text. ``transfer_destinations``: name -> what it handles."""
        s = self.settings
        destinations = transfer_destinations or {}
        described = "; ".join(f"{name} ({what})" for name, what in destinations.items())
        values = {
            "agent_name": s.agent_name,
            "company_name": s.company_name,
            "transfer_destinations": described or "nenhum destino configurado",
            "extra_instructions": s.extra_instructions.strip(),
        }

        def fill(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in values:
                raise ConfigError("prompt.path", f"unknown placeholder {{{{{key}}}}} in {self.path}")
            return values[key]

        return _PLACEHOLDER.sub(fill, self.template).strip()
