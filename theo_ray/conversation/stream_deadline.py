"""Deadlines on a model stream: the first item within one limit, each next within another.

A stream that misses one is cancelled (the replica aborts the request) and
`ModelStreamTimeout` names the stage, so the turn machine can count it and fall back
instead of leaving the caller in silence.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

from theo_ray.conversation.reply import cancel_stream

T = TypeVar("T")


class ModelStreamTimeout(Exception):
    def __init__(self, stage: str, limit_s: float) -> None:
        super().__init__(f"{stage}: nothing for {limit_s:.1f} s")
        self.stage = stage
        self.limit_s = limit_s


async def within_deadlines(
    stream, first_s: float, gap_s: float, first_stage: str, gap_stage: str
) -> AsyncIterator[T]:
    """Items of `stream` as they come; raises ModelStreamTimeout when one is late."""
    items = stream.__aiter__()
    limit, stage = first_s, first_stage
    while True:
        try:
            item = await asyncio.wait_for(items.__anext__(), limit)
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            cancel_stream(stream)
            raise ModelStreamTimeout(stage, limit) from None
        yield item
        limit, stage = gap_s, gap_stage
