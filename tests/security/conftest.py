"""Hypothesis settings for the fuzz tests: bounded, no example database on disk.

`THEO_FUZZ_EXAMPLES=5000 pytest tests/security` digs deeper (the default keeps the whole
folder well under a minute on 2 cores).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "theo-security",
    max_examples=int(os.environ.get("THEO_FUZZ_EXAMPLES", "250")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("theo-security")
