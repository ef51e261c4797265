"""Search clusters for the call-data tests: osmem-server always, a real Elasticsearch when
`THEO_ES_URL` is set.

osmem-server (a PyPI package: an in-memory server of the search API over real HTTP, no
ILM, no rollover) is started per test on 127.0.0.1 and a free port and stopped at the end
(it also exits with the test process: `--parent-pid`). "Stopping" it for an outage is a
SIGSTOP of its process (requests time out) and SIGCONT resumes it with its data. A real
cluster cannot be stopped from here: the sink reaches it through `TcpProxy`, whose
pause closes the door (connections refused) — plain `http://` URLs only.

Real cluster: `THEO_ES_URL=http://localhost:9200` (+ `THEO_ES_API_KEY` or
`THEO_ES_USERNAME`/`THEO_ES_PASSWORD`); each test uses aliases of its own
(`theo-test-<random>-...`) and deletes its indices, templates and policy at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import uuid

import pytest

from tests.calldata.tcp_proxy import TcpProxy
from theo_ray.calldata.es_client import make_client
from theo_ray.calldata.settings import ElasticsearchSettings, IlmSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Osmem:
    kind = "osmem"
    server_mode = "serverless"  # plain application/json: osmem refuses the client's compatibility mimetype
    ilm = False  # osmem has no ILM

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = None
        self.start()

    def start(self) -> None:
        from osmem_server import OsmemServer

        self.server = OsmemServer.start(addr=f"127.0.0.1:{self.port}", japanese=False)

    def kill(self) -> None:
        """Gone (its data with it: osmem keeps everything in memory)."""
        self.server.process.kill()
        self.server.process.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self.server.process.stdin, self.server.process.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass

    def stop(self) -> None:
        os.kill(self.server.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.server.process.pid, signal.SIGCONT)

    def close(self) -> None:
        if self.server is not None and self.server.process.poll() is None:
            os.kill(self.server.process.pid, signal.SIGCONT)
            self.server.close()
        if self.server is not None:
            self._close_pipes()


class RealCluster:
    kind = "real"
    ilm = True

    def __init__(self, url: str) -> None:
        self.upstream = url
        self.server_mode = os.environ.get("THEO_ES_SERVER_MODE", "stack")
        self.proxy = TcpProxy(url) if url.startswith("http://") else None
        self.url = self.proxy.url if self.proxy else url

    def stop(self) -> None:
        if self.proxy is None:
            pytest.skip("an https cluster cannot be paused through the TCP proxy (its certificate names the host)")
        self.proxy.pause()

    def resume(self) -> None:
        self.proxy.resume()

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()


@pytest.fixture(params=["osmem", "real"])
def cluster(request):
    if request.param == "real":
        url = os.environ.get("THEO_ES_URL")
        if not url:
            pytest.skip("THEO_ES_URL is not set: the suite runs against osmem-server only")
        backend = RealCluster(url)
    else:
        backend = Osmem()
    yield backend
    backend.close()


@pytest.fixture
def osmem():
    backend = Osmem()
    yield backend
    backend.close()


def es_settings(backend, **overrides) -> ElasticsearchSettings:
    prefix = f"theo-test-{uuid.uuid4().hex[:8]}" if backend.kind == "real" else "theo"
    values = dict(
        url=backend.url, server_mode=backend.server_mode, turns_alias=f"{prefix}-turns", calls_alias=f"{prefix}-calls",
        number_of_replicas=0, request_timeout_s=1.0, max_retries=0, retry_backoff_s=0.05, retry_backoff_max_s=0.2,
        username=os.environ.get("THEO_ES_USERNAME", ""), password_env="THEO_ES_PASSWORD", api_key_env="THEO_ES_API_KEY",
        ilm=IlmSettings(enabled=backend.ilm, policy_name=f"{prefix}-policy"),
    )
    values.update(overrides)
    return ElasticsearchSettings(**values)


@pytest.fixture
def cleanup():
    """Settings whose indices, templates and policy are deleted after the test (a real cluster)."""
    made: list[tuple[object, ElasticsearchSettings]] = []
    yield lambda backend, settings: made.append((backend, settings))
    for backend, settings in made:
        if backend.kind != "real":
            continue
        client = make_client(settings.__class__(**{**_plain(settings), "url": backend.upstream}))
        for alias in (settings.turns_alias, settings.calls_alias):
            client.options(ignore_status=404).indices.delete(index=f"{alias}-*")
            client.options(ignore_status=404).indices.delete_index_template(name=alias)
        if settings.ilm.enabled:
            client.options(ignore_status=404).ilm.delete_lifecycle(name=settings.ilm.policy_name)
        client.close()


def _plain(settings: ElasticsearchSettings) -> dict:
    return {f: getattr(settings, f) for f in settings.__struct_fields__}
