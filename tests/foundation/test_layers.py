"""Imports run one way: no package imports one of a higher layer (README, Architecture).

Read from the source with `ast` (nothing is imported), so the check is fast and sees imports
inside functions too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Lowest first; a package may import its own layer's packages and any lower layer's.
LAYERS: list[set[str]] = [
    {"errors", "messages", "model_handles", "actor_names", "telemetry", "backend_registry", "config_retired",
     "circuit_breaker"},
    {"calldata"},  # call documents and their sinks; `config` embeds their settings
    {"media", "turn"},
    {"sip", "asterisk"},
    {"conversation"},
    {"config"},
    {"models"},
    {"deployments"},
    {"actors"},
    {"runtime", "sim"},
    {"bench", "cli"},
]
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}
TOP = ("theo_ray", "actors", "deployments")
# `actors/` and `deployments/` are installed as `theo_ray.actors` / `theo_ray.deployments`
# (symlinks in theo_ray/); importing them by the bare folder name would load them twice.
BARE = ("actors", "deployments")


def _package(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "theo_ray":
        return parts[1] if len(parts) > 1 else None
    return parts[0] if parts[0] in TOP else None


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return [n for n in names if n.split(".")[0] in TOP]


def test_every_package_has_a_layer():
    found = {p.name.removesuffix(".py") for p in (ROOT / "theo_ray").iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.name != "__init__.py")}
    found |= {"actors", "deployments"}
    assert not (found - set(LEVEL)), f"packages with no layer: {sorted(found - set(LEVEL))}"


def test_no_import_runs_up_the_layers():
    upward: list[str] = []
    for top in TOP:
        for path in (ROOT / top).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            own = _package(module)
            if own is None:
                continue
            for imported in _imports(path):
                other = _package(imported)
                if other is not None and other != own and LEVEL[other] > LEVEL[own]:
                    upward.append(f"{module} imports {imported} ({own} is below {other})")
    assert not upward, "\n".join(upward)


def test_actors_and_deployments_are_imported_inside_the_theo_ray_namespace():
    bare: list[str] = []
    for top in TOP:
        for path in (ROOT / top).rglob("*.py"):
            bare += [f"{path.relative_to(ROOT)} imports {n}" for n in _imports(path) if n.split(".")[0] in BARE]
    for path in (ROOT / "tests").rglob("*.py"):
        bare += [f"{path.relative_to(ROOT)} imports {n}" for n in _imports(path) if n.split(".")[0] in BARE]
    assert not bare, "\n".join(bare)


def test_the_namespace_links_point_at_the_top_level_folders():
    for name in BARE:
        link = ROOT / "theo_ray" / name
        assert link.is_symlink() and link.resolve() == (ROOT / name).resolve(), link
