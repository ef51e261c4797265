"""The official Elasticsearch client, configured from `call_data.elasticsearch`.

Owns the connection: URL, server mode (stack or serverless), TLS verification with an
optional CA file, request timeout, the client's own retries (timeouts, 429/502/503/504)
and the credentials. An API key or a basic-auth password is read from the environment
variable or the secret file the settings name; secrets are never logged nor put in an
error message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from theo_ray.calldata.settings import ElasticsearchSettings
from theo_ray.errors import ConfigError

RETRY_ON_STATUS = (429, 502, 503, 504)


def _secret(env_name: str, file_name: str, environ: Mapping[str, str], key: str) -> str:
    """The secret from its file (preferred: a mounted secret) or its environment variable."""
    if file_name:
        path = Path(file_name).expanduser()
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(key, f"cannot read the secret file {path}: {exc.strerror}") from None
    return environ.get(env_name, "").strip() if env_name else ""


def resolve_auth(settings: ElasticsearchSettings, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Client keyword arguments for the credentials: `api_key`, `basic_auth`, or none."""
    environ = os.environ if environ is None else environ
    api_key = _secret(settings.api_key_env, settings.api_key_file, environ, "call_data.elasticsearch.api_key_file")
    if api_key:
        return {"api_key": api_key}
    if settings.username:
        password = _secret(settings.password_env, settings.password_file, environ, "call_data.elasticsearch.password_file")
        if not password:
            raise ConfigError("call_data.elasticsearch.username",
                              f"user {settings.username!r} has no password: set ${settings.password_env} or password_file")
        return {"basic_auth": (settings.username, password)}
    return {}


def make_client(settings: ElasticsearchSettings, environ: Mapping[str, str] | None = None):
    """A synchronous `Elasticsearch` client (used from worker threads, never on the loop)."""
    from elasticsearch import Elasticsearch

    if not settings.url:
        raise ConfigError("call_data.elasticsearch.url", "is empty: the Elasticsearch sink is off")
    tls: dict[str, Any] = {}
    if settings.url.startswith("https://"):
        tls["verify_certs"] = settings.verify_certs
        if settings.ca_file:
            tls["ca_certs"] = str(Path(settings.ca_file).expanduser())
    return Elasticsearch(
        settings.url,
        server_mode=settings.server_mode,
        request_timeout=settings.request_timeout_s,
        max_retries=settings.max_retries,
        retry_on_timeout=True,
        retry_on_status=RETRY_ON_STATUS,
        **tls,
        **resolve_auth(settings, environ),
    )
