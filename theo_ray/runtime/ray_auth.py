"""Ray token authentication: keep it on, make sure every Theo process can present the token.

Ray 2.60 authenticates every client (GCS RPCs, the dashboard API, `ray status`) with a
token kept in ``~/.ray/auth_token`` when ``RAY_AUTH_MODE=token``. Theo creates the token
once (mode 600), exports ``RAY_AUTH_MODE=token`` for itself and the processes it starts,
and passes the token as a bearer header to the dashboard's HTTP API.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TOKEN_ENV = "RAY_AUTH_TOKEN"
MODE_ENV = "RAY_AUTH_MODE"


def token_path() -> Path:
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token")).expanduser()


def ensure_auth_token() -> str:
    """Return the cluster token, creating ``~/.ray/auth_token`` (mode 600) if absent."""
    if os.environ.get(TOKEN_ENV):
        token = os.environ[TOKEN_ENV].strip()
    else:
        path = token_path()
        if path.is_file() and path.read_text().strip():
            token = path.read_text().strip()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            token = secrets.token_hex(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as sink:
                sink.write(token)
        # The token grants code execution on the cluster: nobody else may read it.
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    os.environ[MODE_ENV] = "token"
    return token


def dashboard_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ensure_auth_token()}"}
