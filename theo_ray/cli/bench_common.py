"""What every `theo bench` command built on simulated calls shares: the output folder,
the JSON report, starting (or joining) Ray with the model deployments, and number
formatting for the tables. Its own module so the commands import it, not each other."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec

from theo_ray.cli.console import say
from theo_ray.config import TheoConfig


def _write_json(path: Path, report: msgspec.Struct) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2))
    say(f"JSON written to {path}")


def _out_dir(config: TheoConfig, name: str) -> Path:
    return (Path(config.paths.output_dir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()


def _start(config: TheoConfig, models: bool = True):
    """Ray (started or joined) and, unless only the echo agent runs, the model deployments."""
    from theo_ray.models.prepare import prepare_models
    from theo_ray.runtime.ray_cluster import start_or_join
    from theo_ray.runtime.serve_apps import ensure_models_deployed

    if models:
        prepare_models(config, say)
    start_or_join(config.ray, say)
    return ensure_models_deployed(config, say) if models else None


def _f(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:.0f}{unit}"


def _mark(value: float | None, target: float) -> str:
    if value is None:
        return "—"
    return "[green]meets[/green]" if value <= target else "[red]misses[/red]"
