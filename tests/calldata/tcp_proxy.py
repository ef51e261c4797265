"""A TCP forwarder between the sink and a real Elasticsearch, which the tests can pause.

Why a proxy: the outage test stops the cluster while the sink runs; a real cluster in CI
or on a developer's machine cannot be stopped by a test, so the test closes the door in
front of it instead (paused: the listening socket is closed and every open connection
cut, so the client sees "connection refused"); resumed, it listens on the same port
again. Bytes pass through untouched. Used only for `THEO_ES_URL` runs (osmem-server is
stopped for real with SIGSTOP).
"""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlparse


class TcpProxy:
    def __init__(self, upstream_url: str) -> None:
        parsed = urlparse(upstream_url)
        self.upstream = (parsed.hostname or "localhost", parsed.port or 9200)
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.port = 0
        self.resume()
        self.url = f"http://127.0.0.1:{self.port}"

    def resume(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by pause()/close()
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def pause(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for s in self._conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self._conns = []

    def close(self) -> None:
        self.pause()
