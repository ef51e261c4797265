"""The `[call_data]` section of Theo's config: where call documents go and how they last.

Owns the typed settings only (no I/O): the local JSON-lines call log, the Elasticsearch
sink (cluster address, auth, TLS, index/alias names, bulk and retry knobs, the disk spool)
with its ILM policy numbers, the transcript redaction patterns and call recording (folder,
retention). `theo_ray.config` embeds `CallDataSettings` as `TheoConfig.call_data`; every
key can be overridden from the environment, e.g. ``THEO__CALL_DATA__ELASTICSEARCH__URL=https://es.example:9200``.

Secrets never live in the file: the API key or the basic-auth password come from the
environment variable or the secret file named here (read by `es_client.resolve_auth`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import msgspec

from theo_ray.errors import ConfigError

_STRICT = {"forbid_unknown_fields": True, "kw_only": True}
# Elasticsearch durations ("7d", "12h", "30m") and byte sizes ("10gb", "500mb").
_DURATION = re.compile(r"^\d+(d|h|m|s|ms)$")
_SIZE = re.compile(r"^\d+(b|kb|mb|gb|tb)$")
# Index and alias names: lowercase, no wildcard or separators Elasticsearch refuses.
_INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class IlmSettings(msgspec.Struct, **_STRICT):
    """Index lifecycle of the call-data indices (the seed's policy by default)."""

    # False: no ILM policy is installed and the templates name none (clusters without ILM,
    # e.g. OpenSearch or Elastic Serverless, where the project manages retention).
    enabled: bool = True
    policy_name: str = "theo-call-data"
    # Hot: roll the write index over at this primary shard size or age, whichever comes first.
    rollover_max_primary_shard_size: str = "10gb"
    rollover_max_age: str = "7d"
    # Warm (from rollover): shrink to this many shards, force-merge to this many segments.
    warm_min_age: str = "30d"
    warm_shrink_shards: int = 1
    warm_forcemerge_segments: int = 1
    # Delete (from rollover).
    delete_min_age: str = "90d"
    # A snapshot lifecycle (SLM) policy the delete phase waits for ("" = none): an index is
    # deleted only once a snapshot taken by that policy holds it.
    wait_for_snapshot_policy: str = ""

    def __post_init__(self) -> None:
        for key in ("rollover_max_age", "warm_min_age", "delete_min_age"):
            if not _DURATION.match(getattr(self, key)):
                raise ConfigError(f"call_data.elasticsearch.ilm.{key}", f"must be a duration like 7d or 12h, got {getattr(self, key)!r}")
        if not _SIZE.match(self.rollover_max_primary_shard_size):
            raise ConfigError("call_data.elasticsearch.ilm.rollover_max_primary_shard_size",
                              f"must be a size like 10gb, got {self.rollover_max_primary_shard_size!r}")
        if self.warm_shrink_shards < 1 or self.warm_forcemerge_segments < 1:
            raise ConfigError("call_data.elasticsearch.ilm", "warm_shrink_shards and warm_forcemerge_segments must be >= 1")
        if not _INDEX_NAME.match(self.policy_name):
            raise ConfigError("call_data.elasticsearch.ilm.policy_name", f"not a valid policy name: {self.policy_name!r}")


class ElasticsearchSettings(msgspec.Struct, **_STRICT):
    """The Elasticsearch sink; off while `url` is empty."""

    url: str = ""  # e.g. "https://my-deployment.es.eu-west-1.aws.elastic.cloud:443"
    # "stack": a self-hosted cluster or Elastic Cloud Hosted (the client's compatibility
    # headers). "serverless": Elastic Cloud Serverless (plain JSON plus Elastic-Api-Version).
    server_mode: Literal["stack", "serverless"] = "stack"
    # Write aliases; each has an index template `<alias>` over `<alias>-*` and a first index
    # `<alias>-000001` created at start when the alias does not exist yet.
    turns_alias: str = "theo-turns"
    calls_alias: str = "theo-calls"
    number_of_shards: int = 1
    number_of_replicas: int = 1
    template_priority: int = 200
    # Auth: an API key (base64 "id:key" as Kibana shows it) or a user with a password,
    # each from the environment variable or the file named (a Docker/Kubernetes secret).
    api_key_env: str = "THEO_ES_API_KEY"
    api_key_file: str = ""
    username: str = ""
    password_env: str = "THEO_ES_PASSWORD"
    password_file: str = ""
    # TLS: the CA bundle that signed the cluster's certificate ("" = the system's store).
    ca_file: str = ""
    verify_certs: bool = True
    # Per request; the client retries a failed request up to max_retries times itself,
    # then the sink backs off from retry_backoff_s doubling to retry_backoff_max_s.
    request_timeout_s: float = 10.0
    max_retries: int = 2
    retry_backoff_s: float = 0.5
    retry_backoff_max_s: float = 30.0
    bulk_max_docs: int = 500
    # Calls waiting in memory for the spool writer (bounded; beyond it a call's documents
    # are dropped, counted and logged as an error: the writer is stuck, not the cluster).
    queue_max_calls: int = 1000
    # The disk spool: every document is appended here before it is sent and replayed in
    # order after an outage. "" = <paths.output_dir>/call-data/spool.
    spool_dir: str = ""
    spool_max_bytes: int = 1 << 30  # full: new documents are dropped and counted (an alert)
    spool_segment_bytes: int = 16 << 20
    ilm: IlmSettings = msgspec.field(default_factory=IlmSettings)

    def __post_init__(self) -> None:
        for key in ("turns_alias", "calls_alias"):
            name = getattr(self, key)
            if not name.startswith("theo-") or not _INDEX_NAME.match(name):
                raise ConfigError(f"call_data.elasticsearch.{key}", f"must be a lowercase index name starting with 'theo-', got {name!r}")
        if self.turns_alias == self.calls_alias:
            raise ConfigError("call_data.elasticsearch.calls_alias", "must differ from turns_alias")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ConfigError("call_data.elasticsearch.url", f"must start with http:// or https://, got {self.url!r}")
        if self.request_timeout_s <= 0 or self.retry_backoff_s <= 0 or self.retry_backoff_max_s < self.retry_backoff_s:
            raise ConfigError("call_data.elasticsearch.request_timeout_s",
                              "request_timeout_s and retry_backoff_s must be > 0, retry_backoff_max_s >= retry_backoff_s")
        if self.bulk_max_docs < 1 or self.queue_max_calls < 1 or self.max_retries < 0:
            raise ConfigError("call_data.elasticsearch.bulk_max_docs", "bulk_max_docs and queue_max_calls must be >= 1, max_retries >= 0")
        if self.spool_segment_bytes < 4096 or self.spool_max_bytes < self.spool_segment_bytes:
            raise ConfigError("call_data.elasticsearch.spool_max_bytes",
                              "spool_segment_bytes must be >= 4096 and spool_max_bytes >= spool_segment_bytes")


class JsonlLogSettings(msgspec.Struct, **_STRICT):
    """The local call log: one JSON line per turn and one per call summary, rotated."""

    enabled: bool = True
    dir: str = ""  # "" = <paths.output_dir>/call-data
    file_name: str = "calls.jsonl"
    max_bytes: int = 64 << 20  # rotate when the current file would grow past this
    keep_files: int = 10  # rotated files kept (calls.jsonl.1 is the newest)

    def __post_init__(self) -> None:
        if self.max_bytes < 1024 or self.keep_files < 1:
            raise ConfigError("call_data.jsonl.max_bytes", "max_bytes must be >= 1024 and keep_files >= 1")
        if Path(self.file_name).name != self.file_name:
            raise ConfigError("call_data.jsonl.file_name", "a file name, not a path (the folder is call_data.jsonl.dir)")


class RedactionSettings(msgspec.Struct, **_STRICT):
    """Transcript redaction before any document leaves the process (both sinks)."""

    enabled: bool = True
    # Name -> regular expression; a match is replaced by "[<name>]".
    patterns: dict[str, str] = msgspec.field(default_factory=lambda: dict(DEFAULT_PATTERNS))

    def __post_init__(self) -> None:
        for name, pattern in self.patterns.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"call_data.redaction.patterns.{name}", f"not a regular expression: {exc}") from None


# CPF (000.000.000-00 or 11 digits), card numbers (13-19 digits in groups), Brazilian phone
# numbers ((11) 91234-5678, +55 11 912345678). Digits said as words are not caught.
DEFAULT_PATTERNS: dict[str, str] = {
    "cpf": r"\b\d{3}\.?\d{3}\.?\d{3}-?\d{2}\b",
    "card": r"\b(?:\d[ -]?){12,18}\d\b",
    "phone": r"(?:\+?55\s?)?\(?\b\d{2}\)?\s?9?\d{4}[-\s]?\d{4}\b",
}


class RecordingSettings(msgspec.Struct, **_STRICT):
    """Per-call stereo WAV recordings (left caller, right agent) written by each CallActor on
    its RTP clock; off by default. The CallSupervisor sweeps the folder for retention."""

    enabled: bool = False
    directory: str = ""  # "" = <paths.output_dir>/recordings
    # Retention, enforced by a sweep at start and every sweep_interval_s: recordings older
    # than retention_days go, then the oldest until the folder holds max_total_bytes (0 = no cap).
    retention_days: float = 30.0
    max_total_bytes: int = 20 << 30
    sweep_interval_s: float = 3600.0
    # Audio per disk write, and how many writes may wait for the writer thread (bounded
    # memory: at 8 kHz stereo a second is 32 kB); beyond that a chunk is dropped and counted.
    chunk_s: float = 1.0
    queue_chunks: int = 32

    def __post_init__(self) -> None:
        if self.retention_days <= 0 or self.sweep_interval_s <= 0 or self.max_total_bytes < 0:
            raise ConfigError("call_data.recording.retention_days",
                              "retention_days and sweep_interval_s must be > 0, max_total_bytes >= 0")
        if not 0.02 <= self.chunk_s <= 60 or self.queue_chunks < 1:
            raise ConfigError("call_data.recording.chunk_s", "chunk_s must be within 0.02..60 s and queue_chunks >= 1")


class CallDataSettings(msgspec.Struct, **_STRICT):
    jsonl: JsonlLogSettings = msgspec.field(default_factory=JsonlLogSettings)
    elasticsearch: ElasticsearchSettings = msgspec.field(default_factory=ElasticsearchSettings)
    redaction: RedactionSettings = msgspec.field(default_factory=RedactionSettings)
    recording: RecordingSettings = msgspec.field(default_factory=RecordingSettings)


def jsonl_dir(settings: CallDataSettings, output_dir: str) -> Path:
    return Path(settings.jsonl.dir or Path(output_dir) / "call-data").expanduser()


def recording_dir(settings: CallDataSettings, output_dir: str) -> Path:
    return Path(settings.recording.directory or Path(output_dir) / "recordings").expanduser()


def spool_dir(settings: CallDataSettings, output_dir: str) -> Path:
    return Path(settings.elasticsearch.spool_dir or Path(output_dir) / "call-data" / "spool").expanduser()
