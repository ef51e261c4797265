"""The OS scheduling priority of a deployment replica's process (and the processes it starts).

On the embedded CPU default the three models share two cores. Once the language model has
handed its first sentence to TTS, the rest of its reply only has to stay ahead of playback,
while that sentence's TTS chunk is on the caller's critical path; at equal priority the two
split the cores and the first chunk takes twice as long. Lowering the LLM replica's priority
lets STT and TTS take the cores when they need them.

Relative, on purpose: Ray starts every worker at nice 15 already, and an unprivileged process
can only lower its own priority. Measured: setting an absolute nice 10 on the LLM *raised* it
above the STT/TTS replicas (15) and doubled their latency. Nice 19 against 15 is a CFS weight
of 15 against 36: STT/TTS get ~70 % of a contended core.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def lower_cpu_priority(increment: int) -> int:
    """Add `increment` to this process's nice value (clamped at 19 by the OS); children
    started later inherit it. Returns the nice value now in effect."""
    if increment <= 0:
        return os.getpriority(os.PRIO_PROCESS, 0)
    try:
        return os.nice(increment)
    except OSError as exc:  # not fatal: the replica runs at the priority it had
        log.warning("could not lower the priority by %d: %s", increment, exc)
        return os.getpriority(os.PRIO_PROCESS, 0)
