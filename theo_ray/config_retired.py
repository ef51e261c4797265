"""Config keys Theo no longer reads, still accepted for a while with a logged warning.

The config refuses unknown keys (`forbid_unknown_fields`), so removing or renaming a key
would break every file that still has it. Instead the key is listed here: before the file
is validated, `retire_keys` takes it out of the raw mapping, logs a warning naming the
replacement, and, for a rename, carries the value over to the new key. An entry stays for
at least one release after the one that retired the key; then it goes and the key is
refused like any unknown one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import msgspec

from theo_ray.errors import ConfigError

log = logging.getLogger("theo.config")


class RetiredKey(msgspec.Struct, frozen=True):
    key: str  # dotted, as written in the file: "llm.max_tokens"
    replacement: str  # the key that does the job now
    # True: a rename, the value moves to `replacement`. False: the value is dropped (the key
    # never had an effect, so carrying it over would change what a running set-up does).
    moves: bool = False
    why: str = ""
    accepted_until: str = "0.2.0"  # the last release that still accepts the key


RETIRED_KEYS: tuple[RetiredKey, ...] = (
    RetiredKey(
        "llm.max_tokens", "conversation.llm_max_tokens",
        why="the turn loop's reply length was always conversation.llm_max_tokens",
    ),
    RetiredKey(
        "llm.temperature", "conversation.llm_temperature",
        why="the turn loop's sampling temperature was always conversation.llm_temperature",
    ),
    RetiredKey(
        "conversation.turn.comfort_noise", "media.idle_fill_dbfs",
        why="the comfort noise a call sends is the media session's idle fill",
    ),
    RetiredKey(
        "conversation.model_timeout_s", "conversation.timeouts.stt_s", moves=True,
        why="every model stream has its own limit now (conversation.timeouts)",
    ),
)


def _pop(data: dict[str, Any], path: list[str]) -> tuple[bool, Any, dict[str, Any]]:
    """Remove `path` from a copy of `data` (the caller's mapping stays untouched)."""
    top = dict(data)
    node = top
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            return False, None, data
        node[key] = node = dict(child)
    if path[-1] not in node:
        return False, None, data
    return True, node.pop(path[-1]), top


def _put(data: dict[str, Any], path: list[str], value: Any, old: str) -> None:
    node = data
    for key in path[:-1]:
        child = node.get(key, {})
        if not isinstance(child, dict):
            return  # not a table: left for validation to report under its own key
        node[key] = node = dict(child)
    if path[-1] in node:
        raise ConfigError(old, f"deprecated, and its replacement {'.'.join(path)} is set too: keep only that one")
    node[path[-1]] = value


def retire_keys(data: dict[str, Any], retired: Iterable[RetiredKey] = RETIRED_KEYS) -> dict[str, Any]:
    """`data` without the retired keys (renamed ones carried over), each one found logged."""
    for entry in retired:
        found, value, data = _pop(data, entry.key.split("."))
        if not found:
            continue
        if entry.moves:
            _put(data, entry.replacement.split("."), value, entry.key)
            done = f"its value now sets {entry.replacement}"
        else:
            done = f"it is ignored (it never had an effect); set {entry.replacement} instead"
        reason = f" ({entry.why})" if entry.why else ""
        log.warning(
            "config key '%s' is deprecated: %s%s. It is accepted until release %s, then refused.",
            entry.key, done, reason, entry.accepted_until,
        )
    return data
