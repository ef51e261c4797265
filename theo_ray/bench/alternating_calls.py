"""Two private call planes compared call by call: the same scenarios placed on each in turn,
the plane that goes first alternating, so the drift of a shared machine (another process,
a model warming up) falls on both sides alike. Used by `theo bench pipeline` (sequential vs
streaming) and `theo bench telemetry-overhead` (tracing on vs off)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from theo_ray.bench.sim_calls import SimCall, SimCallPlane, place_call, turn_samples
from theo_ray.sim.caller_voice import CallerVoice
from theo_ray.sim.scenario import Scenario


async def alternating_calls(
    planes: Mapping[str, SimCallPlane],
    scenarios: list[Scenario],
    voice: CallerVoice,
    out_dir: Path,
    say: Callable[[str], None],
    label: str = "",
    scripted_app: str = "",
) -> dict[str, list[SimCall]]:
    """Start the planes, place every scenario once on each (call i: the planes in order for
    even i, reversed for odd i), stop the planes and delete `scripted_app` (the scripted
    language model deployed for the run) whatever happens. Returns the calls per plane."""
    modes = list(planes)
    calls: dict[str, list[SimCall]] = {mode: [] for mode in modes}
    tag = time.strftime("%H%M%S")
    prefix = f"{label}-" if label else ""
    try:
        for plane in planes.values():
            await plane.start()
        for i, scenario in enumerate(scenarios):
            for mode in modes if i % 2 == 0 else modes[::-1]:
                say(f"{label + ' ' if label else ''}{mode} call {i + 1}/{len(scenarios)} ...")
                call = await place_call(planes[mode], scenario, voice, out_dir, f"{prefix}{mode}-{tag}-{i + 1}")
                lat = [f"{t.first_audio_ms:.0f}" for t in turn_samples(call)]
                say(f"  first audio ms {lat}" if call.run else f"  [red]failed[/red]: {call.error}")
                calls[mode].append(call)
    finally:
        for plane in planes.values():
            await plane.stop()
        if scripted_app:
            from ray import serve

            serve.delete(scripted_app)
    return calls
