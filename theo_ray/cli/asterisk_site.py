"""Loading the Asterisk site settings from a file: a bare site file or Theo's own config
(its `[asterisk]` section), plus `key.path=value` overrides. It sits with the CLI, above
Theo's config, because it reads that config; `theo_ray.asterisk` itself never imports the
config (the config imports `theo_ray.asterisk.settings`)."""

from __future__ import annotations

from pathlib import Path

import msgspec

from theo_ray.asterisk.settings import AsteriskSiteSettings
from theo_ray.config import load_config
from theo_ray.errors import ConfigError


def load_site_settings(
    path: str | Path | None = None, overrides: list[str] | None = None, *, theo_config: bool | None = None
) -> AsteriskSiteSettings:
    """Read settings from a TOML or JSON file (optional) and apply `key.path=value` overrides.

    The file is either Theo's own config (its `[asterisk]` section is used, so Theo and the PBX
    read one file) or a bare site file whose top-level tables are those of
    `AsteriskSiteSettings` (theo, pbx, sip, dialplan, ami). `theo_config` says which (None:
    YAML, an `[asterisk]` table or any other top-level table means Theo's).

    An override value is parsed as JSON when it can be (numbers, booleans, lists), else taken
    as a string: `--set ami.port=5039`, `--set pbx.local_nets='["10.0.0.0/8"]'`.
    """
    raw: dict = {}
    if path is not None and (theo_config or str(path).endswith((".yaml", ".yml"))):
        raw = _asterisk_section_of_theo_config(path)
    elif path is not None:
        data = Path(path).expanduser().read_bytes()
        try:
            raw = msgspec.json.decode(data) if str(path).endswith(".json") else msgspec.toml.decode(data)
        except msgspec.DecodeError as exc:
            raise ConfigError(str(path), f"cannot parse: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(str(path), "top level must be a table")
        if theo_config is None and ("asterisk" in raw or not set(raw) <= set(AsteriskSiteSettings.__struct_fields__)):
            raw = _asterisk_section_of_theo_config(path)
    for item in overrides or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(item, "override must look like key.path=value")
        _set_path(raw, key.strip(), _parse_value(text))
    try:
        return msgspec.convert(raw, AsteriskSiteSettings)
    except msgspec.ValidationError as exc:
        message = str(exc)
        where = message.rsplit(" - at `", 1)
        key = where[1].rstrip("`").removeprefix("$.") if len(where) == 2 else "asterisk"
        raise ConfigError(key, where[0]) from exc


def _asterisk_section_of_theo_config(path: str | Path) -> dict:
    """Theo's config file validated whole (its cross-checks tie [asterisk.theo] to [sip]), with
    its THEO__ environment overrides, and its [asterisk] section taken."""
    return msgspec.to_builtins(load_config(path).asterisk)


def _parse_value(text: str) -> object:
    try:
        return msgspec.json.decode(text.encode())
    except msgspec.DecodeError:
        return text


def _set_path(raw: dict, dotted: str, value: object) -> None:
    node = raw
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(dotted, f"'{part}' is not a table")
        node = child
    node[parts[-1]] = value
