"""Idempotent Elasticsearch setup at start: ILM policy, index templates, write aliases.

Owns the order and the checks of the setup requests (bodies from `es_schema`): the ILM
policy first (when enabled), then one index template per alias, then the rollover
bootstrap (`<alias>-000001` as the alias's write index) unless the alias exists. Running
it again changes nothing. A refusal (any HTTP error answer, an unacknowledged request, a
concrete index squatting on an alias name) raises `CallDataSetupError` naming the step and
the cluster's reason, never a silent success; an unreachable cluster raises
`ClusterUnreachable`, which the sink treats as "spool and try again later".
"""

from __future__ import annotations

import logging
from typing import Any

from theo_ray.calldata import es_schema
from theo_ray.calldata.settings import ElasticsearchSettings
from theo_ray.errors import CallDataSetupError

log = logging.getLogger("theo.calldata")


class ClusterUnreachable(Exception):
    """No answer from the cluster (connection refused, timeout, TLS failure)."""


TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


def status_of(exc: Exception) -> int | None:
    return getattr(getattr(exc, "meta", None), "status", None) or getattr(exc, "status_code", None)


def describe_api_error(exc: Exception) -> str:
    """`<status> <error type>: <reason>` from an ApiError, without request headers."""
    status = status_of(exc) or "?"
    body = getattr(exc, "body", None)
    kind, reason = "", ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        root = (error.get("root_cause") or [error])[0]
        kind, reason = str(root.get("type", "")), str(root.get("reason", ""))
    elif isinstance(body, dict) and "error" in body:
        reason = str(body["error"])
    return f"{status} {kind}: {reason or getattr(exc, 'message', str(exc))}".replace(" :", ":")


def call_step(step: str, fn, *args, **kwargs) -> Any:
    """Run one setup request; map its failures to the two typed outcomes."""
    from elasticsearch import ApiError, TransportError

    try:
        response = fn(*args, **kwargs)
    except ApiError as exc:
        if status_of(exc) in TRANSIENT_STATUS:  # overloaded or unavailable: not a refusal
            raise ClusterUnreachable(f"{step}: {describe_api_error(exc)}") from None
        raise CallDataSetupError(step, describe_api_error(exc)) from None
    except TransportError as exc:
        raise ClusterUnreachable(f"{step}: {type(exc).__name__}: {exc.message}") from None
    body = getattr(response, "body", response)
    if isinstance(body, dict) and body.get("acknowledged") is False:
        raise CallDataSetupError(step, "the cluster did not acknowledge the request")
    return body


def install(client, settings: ElasticsearchSettings) -> list[str]:
    """Install the policy, the templates and the aliases; returns what was done, one line
    per request (for the log)."""
    done: list[str] = []
    if settings.ilm.enabled:
        policy = es_schema.ilm_policy(settings)
        call_step(f"PUT _ilm/policy/{settings.ilm.policy_name}", client.ilm.put_lifecycle,
                  name=settings.ilm.policy_name, policy=policy["policy"])
        done.append(f"ILM policy {settings.ilm.policy_name}")
    for name, body in es_schema.templates(settings).items():
        call_step(f"PUT _index_template/{name}", client.indices.put_index_template, name=name, **body)
        done.append(f"index template {name}")
    for alias in (settings.turns_alias, settings.calls_alias):
        done.append(bootstrap_alias(client, alias))
    return done


def bootstrap_alias(client, alias: str) -> str:
    if call_step(f"HEAD _alias/{alias}", client.indices.exists_alias, name=alias):
        return f"write alias {alias} exists"
    if call_step(f"HEAD {alias}", client.indices.exists, index=alias):
        raise CallDataSetupError(
            f"bootstrap {alias}",
            f"a concrete index named {alias!r} exists (written before the alias was set up?): "
            "reindex it into the alias or delete it",
        )
    index = es_schema.first_index(alias)
    try:
        call_step(f"PUT {index}", client.indices.create, index=index, **es_schema.bootstrap_body(alias))
    except CallDataSetupError as exc:
        # Another node bootstrapped the same alias between our check and our request.
        if "resource_already_exists" in exc.reason and call_step(f"HEAD _alias/{alias}", client.indices.exists_alias, name=alias):
            return f"write alias {alias} exists"
        raise
    return f"write alias {alias} -> {index}"
