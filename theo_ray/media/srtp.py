"""SRTP/SRTCP protection of one call's media (RFC 3711) with keys exchanged in the SDP
(SDES, RFC 4568), through libsrtp (`pylibsrtp`).

`SrtpKeys` is what the gateway negotiated: the crypto suite, the peer's master key+salt
(to unprotect what it sends) and Theo's own (to protect what Theo sends). `SrtpContext`
holds the two libsrtp sessions of a call. A packet that fails authentication or the
replay check is dropped and counted by the caller of `unprotect*` (None comes back);
nothing here raises on what arrives from the network.

The keys are secrets: they never appear in a repr, a log line or a record.
"""

from __future__ import annotations

import os

import msgspec
import pylibsrtp

from theo_ray.media.media_stats import DropCounters

# The one suite Theo offers and answers: what Asterisk (res_srtp) and every SDES phone
# speak. AES_CM_128_HMAC_SHA1_32 would shorten only the RTP tag, not worth a second suite.
SUITE = "AES_CM_128_HMAC_SHA1_80"
KEY_SALT_BYTES = 30  # 128-bit master key + 112-bit master salt


class SrtpKeys(msgspec.Struct, frozen=True):
    suite: str
    remote_key: bytes  # the peer's master key || salt, from its a=crypto
    local_key: bytes  # Theo's, sent in Theo's a=crypto
    tag: int = 1  # the a=crypto tag Theo answered

    def __repr__(self) -> str:  # keys stay out of logs and tracebacks
        return f"SrtpKeys({self.suite}, tag={self.tag})"

    __str__ = __repr__


def new_key() -> bytes:
    return os.urandom(KEY_SALT_BYTES)


def _policy(key: bytes, ssrc_type: int) -> pylibsrtp.Policy:
    return pylibsrtp.Policy(key=key, ssrc_type=ssrc_type,
                            srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)


class SrtpContext:
    """Both directions of one call: protect what Theo sends, unprotect what arrives."""

    def __init__(self, keys: SrtpKeys, drops: DropCounters) -> None:
        if keys.suite != SUITE or len(keys.local_key) != KEY_SALT_BYTES or len(keys.remote_key) != KEY_SALT_BYTES:
            raise ValueError(f"unsupported SRTP keys {keys!r}")
        self.keys = keys
        self._tx = pylibsrtp.Session(_policy(keys.local_key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
        self._rx = pylibsrtp.Session(_policy(keys.remote_key, pylibsrtp.Policy.SSRC_ANY_INBOUND))
        self.drops = drops  # the session's: srtp_auth, srtp_replay, srtp_other

    def protect(self, packet: bytes) -> bytes:
        return self._tx.protect(packet)

    def protect_rtcp(self, packet: bytes) -> bytes:
        return self._tx.protect_rtcp(packet)

    def unprotect(self, packet: bytes) -> bytes | None:
        return self._checked(self._rx.unprotect, packet, 12 + 10)

    def unprotect_rtcp(self, packet: bytes) -> bytes | None:
        return self._checked(self._rx.unprotect_rtcp, packet, 8 + 4 + 10)

    def _checked(self, unprotect, packet: bytes, shortest: int) -> bytes | None:
        if len(packet) < shortest:
            self.drops.srtp_other += 1
            return None
        try:
            return unprotect(packet)
        except pylibsrtp.Error as exc:
            text = str(exc)
            if "authentication" in text:
                self.drops.srtp_auth += 1
            elif "replay" in text or "too old" in text:
                self.drops.srtp_replay += 1
            else:
                self.drops.srtp_other += 1
            return None


class ProtectingTransport:
    """The RTP socket's transport as the outbound path sees it: SRTP on every sendto."""

    def __init__(self, transport, protect) -> None:
        self._transport = transport
        self._protect = protect

    def sendto(self, data: bytes, addr) -> None:
        self._transport.sendto(self._protect(data), addr)

    def __getattr__(self, name: str):  # close(), get_extra_info(): the socket's own
        return getattr(self._transport, name)
