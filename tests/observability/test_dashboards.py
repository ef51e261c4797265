"""The Grafana dashboard and the Prometheus alert rules name only metrics Theo defines,
the dashboard file is what its generator writes, and promtool accepts the rules."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from theo_ray.telemetry.metrics import DEFINITIONS

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "observability"


def _names(text: str) -> set[str]:
    names = set()
    for found in re.findall(r"\bray_(theo_\w+)", text):
        names.add(re.sub(r"_(bucket|count|sum)$", "", found))
    return names


def test_dashboard_and_rules_name_defined_metrics():
    dashboard = (OBS / "grafana" / "theo-dashboard.json").read_text()
    rules = (OBS / "prometheus" / "theo-alerts.yml").read_text()
    used = _names(dashboard) | _names(rules)
    assert used and used <= set(DEFINITIONS), used - set(DEFINITIONS)
    for name in ("theo_turn_stage_ms", "theo_dead_air_total", "theo_breaker_state", "theo_warm_pool_size"):
        assert name in _names(rules), name
    assert 'theo_ready{check="ami"}' in rules


def test_dashboard_file_is_generated():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_dashboard", OBS / "grafana" / "build_dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert json.loads((OBS / "grafana" / "theo-dashboard.json").read_text()) == module.dashboard()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
def test_promtool_accepts_the_rules():
    result = subprocess.run(["promtool", "check", "rules", str(OBS / "prometheus" / "theo-alerts.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
