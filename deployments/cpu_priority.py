"""The OS scheduling priority of a deployment replica's process (and the processes it starts).

On the embedded CPU default the three models share two cores. Once the language model has
handed its first sentence to TTS, the rest of its reply only has to stay ahead of playback,
while that sentence's TTS chunk is on the caller's critical path; at equal priority the two
split the cores and the first chunk takes twice as long. A positive nice value on the LLM
replica lets STT and TTS take the cores when they need them (Linux CFS weights: nice 10 is
~1/10 of nice 0). On a GPU node it changes nothing that matters.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def set_cpu_nice(nice: int) -> None:
    """Set this process's nice value (absolute, 0..19); children started later inherit it."""
    if nice <= 0:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, min(19, nice))
    except OSError as exc:  # not fatal: the replica runs at the default priority
        log.warning("could not set nice %d: %s", nice, exc)
