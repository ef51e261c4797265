"""A real call with SRTP both ways on a real plane: SIP over TLS to a SipGateway shard
process, SDES keys in the SDP, the echo-mode CallActor's RtpSession protecting and
unprotecting, and the caller's own RtpSession decoding the echo (it hears nothing unless
SRTP is right in both directions). The caller then sends one tampered packet and one
replayed packet: the CallActor drops and counts both and the call goes on."""

from __future__ import annotations

import asyncio

import msgspec
import numpy as np
import pytest

from tests.media.signals import speech_like
from tests.sip.tls_certs import make_pki
from theo_ray.bench.media_bench import EchoCallPlane, LoopbackCall
from theo_ray.sim.sip_caller import CallerSettings
from theo_ray.sip.tls import SipTlsSettings

pytestmark = pytest.mark.slow

RATE = 8000


class TamperingSender:
    """Sits between the caller's SRTP protection and its socket (the caller session's
    ProtectingTransport, a private seam of RtpSession): corrupts the next protected packet,
    or sends the last genuine one again, from the very address the CallActor latched on."""

    def __init__(self, session) -> None:
        self.wrapper = session._outbound._transport  # ProtectingTransport
        self._protect = self.wrapper._protect
        self.wrapper._protect = self.protect
        self.tamper_next = False
        self.last = b""
        self.last_to: tuple[str, int] | None = None

    def protect(self, data: bytes) -> bytes:
        out = self._protect(data)
        if self.tamper_next:
            self.tamper_next = False
            return out[:20] + bytes([out[20] ^ 0x40]) + out[21:]  # one bit of the encrypted payload
        self.last = out
        return out

    def replay(self, to: tuple[str, int]) -> None:
        self.wrapper._transport.sendto(self.last, to)


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))


async def test_an_srtp_call_over_tls_echoes_and_counts_bad_packets(ray_cluster, theo_config, tmp_path):
    pki = make_pki(tmp_path / "pki")  # a key without passphrase: the shard runs in a Ray worker
    tls = SipTlsSettings(enabled=True, port=0, cert_file=pki.cert_file, key_file=pki.key_file)
    config = msgspec.structs.replace(theo_config, sip=msgspec.structs.replace(theo_config.sip, tls=tls, srtp="optional"))
    caller_settings = CallerSettings(media="external", codecs=["PCMU"], transport="tls",
                                     tls_ca_file=pki.ca_file, srtp=True)
    async with EchoCallPlane(config, warm_pool_size=1) as plane:
        assert len(plane.tls_uris) == 1
        line = LoopbackCall("it-srtp", config.media, srtp=True, caller_settings=caller_settings)
        try:
            await line.dial(plane.tls_uris[0])
            sender = TamperingSender(line.rtp)
            assert "RTP/SAVP" in line.answered.sdp and "a=crypto:" in line.answered.sdp
            await plane.wait_warm()
            line.play_continuously(speech_like(RATE, 4.0, top_hz=3400))
            started = line.frames_seen
            await asyncio.wait_for(_until(lambda: line.frames_seen >= started + 150), 30)
            heard = [rms(f.pcm) for f in line.frames[-50:]]
            before = await plane.media_stats("it-srtp")
            sender.tamper_next = True
            await asyncio.sleep(0.2)
            sender.replay(line.call_rtp_address)
            await asyncio.sleep(1.0)
            after = await plane.media_stats("it-srtp")
            still_heard = [rms(f.pcm) for f in line.frames[-25:]]
            caller = line.rtp.stats()
            gateway = await plane.gateway.stats.remote()
            await line.hangup()
        finally:
            await line.close()
    print(f"\nSRTP echo: median RMS heard {np.median(heard):.0f}; actor {after.packets_in} in "
          f"{after.packets_out} out, drops {after.drops}; caller {caller.packets_in} in "
          f"{caller.packets_out} out, drops {caller.drops}")
    assert before.srtp and caller.srtp
    # The echo is the caller's speech (-30 dBFS or louder), not the -65 dBFS idle fill:
    # the CallActor unprotected it and the caller unprotected the answer.
    assert np.median(heard) > 500 and np.median(still_heard) > 500
    assert caller.drops.srtp_auth == caller.drops.srtp_replay == caller.drops.srtp_other == 0
    assert before.drops.srtp_auth == before.drops.srtp_replay == 0
    assert after.drops.srtp_auth == 1 and after.drops.srtp_replay == 1, after.drops
    assert gateway.srtp_calls == 1


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.05)
