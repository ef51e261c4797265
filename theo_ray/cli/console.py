"""Console output shared by the subcommands (rich), so progress looks the same everywhere."""

from __future__ import annotations

import sys

from rich.console import Console

# Piped output (CI logs, files) gets a wide fixed width so tables are not squeezed.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def say(message: str) -> None:
    console.print(message)
