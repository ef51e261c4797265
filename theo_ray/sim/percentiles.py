"""Percentile summaries (p50/p95/p99/mean/max) of measured figures, for call reports and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np


class Percentiles(msgspec.Struct, frozen=True):
    """Summary of a list of figures; the statistics are None when ``count`` is 0."""

    count: int
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean: float | None = None
    max: float | None = None


def percentiles(values: Sequence[float | None]) -> Percentiles:
    """p50/p95/p99/mean/max of the values that are not None (linear interpolation)."""
    data = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if data.size == 0:
        return Percentiles(count=0)
    p50, p95, p99 = np.percentile(data, [50, 95, 99])
    return Percentiles(
        count=int(data.size),
        p50=round(float(p50), 1),
        p95=round(float(p95), 1),
        p99=round(float(p99), 1),
        mean=round(float(data.mean()), 1),
        max=round(float(data.max()), 1),
    )
