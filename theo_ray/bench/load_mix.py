"""The scenarios a load test plays: where a scenario named without a path is found, the
default mix, and the patient form of a scenario (every wait for the end of the agent's turn settles
long enough that a filler followed by a late reply is not taken as the end of the answer).
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from theo_ray.sim.scenario import Scenario, WaitAgent, load_scenario

_ROOT = Path(__file__).resolve().parents[2]
# Where a scenario named without a path is looked up, in order.
SCENARIO_DIRS = (_ROOT / "theo_ray" / "sim" / "scenarios", _ROOT / "tests" / "scenarios")
DEFAULT_MIX = ("greeting_simple_question", "invoice_follow_up_memory", "interruption_mid_sentence")


def resolve_scenario(name: str) -> Scenario:
    """A scenario by YAML path, or by name in SCENARIO_DIRS."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return load_scenario(path)
    for folder in SCENARIO_DIRS:
        candidate = folder / f"{name}.yaml"
        if candidate.is_file():
            return load_scenario(candidate)
    raise FileNotFoundError(f"scenario {name!r}: no such YAML file or name in {[str(d) for d in SCENARIO_DIRS]}")


def patient(scenario: Scenario, settle_ms: int) -> Scenario:
    """The scenario with every wait for the end of the agent's turn settling at least ``settle_ms``."""
    steps = [
        msgspec.structs.replace(s, settle_ms=max(s.settle_ms, settle_ms))
        if isinstance(s, WaitAgent) and s.until == "ends" else s
        for s in scenario.steps
    ]
    return msgspec.structs.replace(scenario, steps=steps)
