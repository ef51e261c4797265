"""Transcript redaction: configured patterns (CPF, card and phone numbers by default)
replaced by a "[name]" marker before a call's text is put in any document."""

from __future__ import annotations

import re

from theo_ray.calldata.settings import RedactionSettings


class Redactor:
    def __init__(self, patterns: dict[str, str], enabled: bool = True) -> None:
        self.enabled = enabled
        self._patterns = [(name, re.compile(pattern)) for name, pattern in patterns.items()]

    @classmethod
    def from_settings(cls, settings: RedactionSettings) -> "Redactor":
        return cls(settings.patterns, settings.enabled)

    def __call__(self, text: str) -> str:
        if not self.enabled or not text:
            return text
        for name, pattern in self._patterns:
            text = pattern.sub(f"[{name}]", text)
        return text


NO_REDACTION = Redactor({}, enabled=False)
