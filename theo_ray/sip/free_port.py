"""Free SIP ports on loopback, for private gateways in tests and benchmarks."""

from __future__ import annotations

import socket


def free_sip_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host` right now (the gateway binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise OSError(f"no free SIP port on {host}")
