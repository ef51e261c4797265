"""Hand-built SIP requests over UDP, for inputs a well-behaved user agent never sends."""

from __future__ import annotations

import socket
import uuid


def request(
    method: str,
    port: int,
    *,
    body: str = "",
    headers: dict[str, str] | None = None,
    source: str = "127.0.0.1",
) -> tuple[str, socket.socket]:
    """The request text and the bound socket to send it from."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    local_port = sock.getsockname()[1]
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
    lines = [
        f"{method} sip:theo@127.0.0.1:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP {source}:{local_port};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:raw@{source}>;tag={uuid.uuid4().hex[:8]}",
        f"To: <sip:theo@127.0.0.1:{port}>",
        f"Call-ID: {uuid.uuid4().hex}@{source}",
        f"CSeq: 1 {method}",
        f"Contact: <sip:raw@{source}:{local_port}>",
    ]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return "\r\n".join(lines) + "\r\n\r\n" + body, sock


def send_and_read_final(
    method: str, port: int, *, body: str = "", timeout: float = 5.0, **kwargs
) -> str:
    """Send one request; return the first final (>= 200) response's status line."""
    message, sock = request(method, port, body=body, **kwargs)
    with sock:
        sock.settimeout(timeout)
        sock.sendto(message.encode(), ("127.0.0.1", port))
        while True:
            data, _ = sock.recvfrom(65535)
            status_line = data.decode(errors="replace").split("\r\n", 1)[0]
            code = int(status_line.split()[1])
            if code >= 200:
                if method == "INVITE":
                    # ACK the final response so the server transaction ends quietly.
                    sock.sendto(_ack_for(message, data.decode(errors="replace")).encode(), ("127.0.0.1", port))
                return status_line


def _ack_for(invite: str, response: str) -> str:
    head = invite.split("\r\n\r\n", 1)[0].split("\r\n")
    to_line = next(
        line for line in response.split("\r\n") if line.lower().startswith(("to:", "t:"))
    )
    out = [head[0].replace("INVITE", "ACK", 1)]
    for line in head[1:]:
        name = line.split(":", 1)[0].lower()
        if name == "to":
            out.append(to_line)
        elif name == "cseq":
            out.append(line.replace("INVITE", "ACK"))
        elif name in ("via", "from", "call-id", "max-forwards"):
            out.append(line)
    out.append("Content-Length: 0")
    return "\r\n".join(out) + "\r\n\r\n"
