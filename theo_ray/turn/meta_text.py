"""Bracketed meta-text dropped from a streamed reply before anyone hears it.

The prompt marks an interrupted agent turn as ``[interrompido em: "…"]``; a 1.5B model
sometimes writes such a mark in its own reply ('Tudo ótimo, Carlos! [interrompido em: "—"]'),
and the voice read it out ("Interrompido em até a próxima"). Nothing the agent should say is
in square brackets, so everything between "[" and its "]" is dropped as it streams (a "["
never closed drops the rest of the reply) and counted.
"""

from __future__ import annotations


class BracketFilter:
    """feed() returns the part of each delta outside brackets; ``dropped`` counts the spans."""

    def __init__(self) -> None:
        self._depth = 0
        self.dropped = 0

    def feed(self, text: str) -> str:
        out = []
        for c in text:
            if c == "[":
                self._depth += 1
            elif c == "]" and self._depth:
                self._depth -= 1
                self.dropped += self._depth == 0
            elif not self._depth:
                out.append(c)
        return "".join(out)

    @property
    def open(self) -> bool:
        """Inside a bracket the model never closed (the rest of the reply is dropped)."""
        return self._depth > 0
