"""Re-pointing an SDP body's audio stream at another address, for where pjsua writes the
SDP but another engine owns the RTP socket (the caller simulator's "external" media mode).
"""

from __future__ import annotations


def retarget_audio(sdp: str, host: str, port: int) -> str:
    """Point an SDP's audio stream (c=, m=audio port, a=rtcp) at ``host:port``.

    Used where pjsua writes the SDP but another engine owns the RTP socket (the caller
    simulator's "external" media mode).
    """
    family = "IP6" if ":" in host else "IP4"
    out: list[str] = []
    in_audio = False
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        if line.startswith("m="):
            in_audio = line.startswith("m=audio ")
            if in_audio:
                parts = line.split(" ")
                parts[1] = str(port)
                line = " ".join(parts)
        elif line.startswith("c="):
            line = f"c=IN {family} {host}"
        elif in_audio and line.startswith("a=rtcp:"):
            line = f"a=rtcp:{port + 1}"
        elif line.startswith("o="):
            parts = line.split(" ")
            if len(parts) == 6:
                parts[4], parts[5] = family, host
                line = " ".join(parts)
        out.append(line)
    return "\r\n".join(out) + "\r\n"
