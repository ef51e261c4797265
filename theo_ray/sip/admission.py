"""Admission control at the SIP edge: how many INVITEs, and calls, a shard takes from whom.

Applied to every new INVITE from an allowed peer (strangers get 403 before this and spend
no one's tokens), before the INVITE is parsed, so a flood costs a token-bucket lookup and
a 503 each:

- the INVITE rate per source address and for the whole shard: token buckets
  (`invites_per_s` refilled per second, at most `invite_burst` kept);
- concurrent calls per source address (`max_calls_per_source`; the shard-wide cap is
  `sip.max_calls`, refused in `invite_screen` as `rejected_full`).

Every refusal is a `503 Service Unavailable` with `Retry-After` (RFC 3261 section 21.5.4:
the PBX retries later or tries the next shard; never a 486, which would tell the caller the
callee is busy), counted by reason in `GatewayStats`. The limits are per shard process: a
node admits `sip.shards` times them (each shard is its own failure domain; a shared bucket
would put a cross-process lock on every INVITE).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import msgspec

from theo_ray.errors import ConfigError
from theo_ray.sip.invite_screen import Refusal


class AdmissionSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Concurrent calls one source address may hold on a shard; 0 = sip.max_calls (behind a
    # PBX every call comes from its one address, so the per-source cap is the shard's).
    max_calls_per_source: int = 0
    # New INVITEs per second one source may send a shard, and the burst it may save up. A
    # shard answers sip.max_calls (3) calls; retransmissions of one INVITE are absorbed by
    # pjsip's transaction layer and never count. 0 = no per-source rate limit.
    invites_per_s_per_source: float = 10.0
    invite_burst_per_source: int = 20
    # The same for all sources together, per shard. 0 = no shard-wide rate limit.
    invites_per_s: float = 30.0
    invite_burst: int = 60
    # Source addresses whose buckets are kept (least recently seen forgotten first).
    tracked_sources: int = 1024

    def __post_init__(self) -> None:
        for key in ("max_calls_per_source", "invite_burst_per_source", "invite_burst"):
            if getattr(self, key) < 0:
                raise ConfigError(f"sip.admission.{key}", "must be >= 0")
        for key in ("invites_per_s_per_source", "invites_per_s"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"sip.admission.{key}", "must be a finite number >= 0 (0 = no limit)")
        if self.invites_per_s_per_source and self.invite_burst_per_source < 1:
            raise ConfigError("sip.admission.invite_burst_per_source", "must be >= 1 when the rate is limited")
        if self.invites_per_s and self.invite_burst < 1:
            raise ConfigError("sip.admission.invite_burst", "must be >= 1 when the rate is limited")
        if not 1 <= self.tracked_sources <= 1_000_000:
            raise ConfigError("sip.admission.tracked_sources", "must be 1..1000000")


class TokenBucket:
    """`rate` tokens per second, at most `burst` kept; starts full."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> float:
        """0.0 when a token was taken; else the seconds until the next one."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def _retry_after(wait_s: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(wait_s)))}


class AdmissionControl:
    """The shard's admission state; used on the SIP thread only (no locks)."""

    def __init__(self, settings: AdmissionSettings, shard_max_calls: int, retry_after_s: int) -> None:
        self.settings = settings
        # A cap at or above the shard's own is the shard's: refused as rejected_full there.
        cap = settings.max_calls_per_source
        self._per_source_calls = cap if 0 < cap < shard_max_calls else None
        self._retry_after_s = retry_after_s
        self._global: TokenBucket | None = None
        self._sources: OrderedDict[str, TokenBucket] = OrderedDict()

    def check(self, host: str, now: float, calls_from_source: int) -> Refusal | None:
        """None to go on with the INVITE; else the 503 to send. Takes a token when limited."""
        s = self.settings
        if s.invites_per_s_per_source:
            bucket = self._sources.get(host)
            if bucket is None:
                bucket = self._sources[host] = TokenBucket(s.invites_per_s_per_source, s.invite_burst_per_source, now)
                while len(self._sources) > s.tracked_sources:
                    self._sources.popitem(last=False)
            else:
                self._sources.move_to_end(host)
            wait = bucket.take(now)
            if wait:
                return Refusal(503, "refused_source_rate",
                               f"{host} over {s.invites_per_s_per_source:g} INVITEs/s", _retry_after(wait))
        if s.invites_per_s:
            if self._global is None:
                self._global = TokenBucket(s.invites_per_s, s.invite_burst, now)
            wait = self._global.take(now)
            if wait:
                return Refusal(503, "refused_global_rate",
                               f"shard over {s.invites_per_s:g} INVITEs/s", _retry_after(wait))
        if self._per_source_calls is not None and calls_from_source >= self._per_source_calls:
            return Refusal(503, "refused_source_calls",
                           f"{host} holds {calls_from_source} calls (at most {self._per_source_calls})",
                           {"Retry-After": str(self._retry_after_s)})
        return None
