"""The ILM policy, index template and rollover-bootstrap requests Theo sends, checked
against the shapes Elasticsearch documents, through the official client over HTTP.

Why an HTTP test double (`RecordingCluster`, below): osmem-server has no ILM and no
rollover, and no Elasticsearch installs here, so these requests cannot be run against a
cluster that understands them. The double answers like Elasticsearch (acknowledged /
404 / a licence refusal) and records each request's method, path, headers and JSON body;
the tests assert those bodies against literals written from the Elasticsearch reference
(PUT _ilm/policy/<policy>, PUT _index_template/<name>, PUT <index> with `aliases`), not
against Theo's own builders. With THEO_ES_URL set, test_es_sink.py runs the same setup
against a real cluster.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from theo_ray.calldata import es_setup
from theo_ray.calldata.es_client import make_client
from theo_ray.calldata.settings import ElasticsearchSettings, IlmSettings
from theo_ray.errors import CallDataSetupError, ConfigError

ACK = {"acknowledged": True}


class RecordingCluster:
    """An HTTP server that answers like Elasticsearch and records every request (a test double)."""

    def __init__(self, answers=None) -> None:
        self.requests: list[dict] = []
        self.answers = answers or {}  # (method, path) -> (status, body)
        double = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                double.requests.append({"method": self.command, "path": path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                        "body": json.loads(raw) if raw else None})
                status, body = double.answer(self.command, path)
                data = json.dumps(body).encode() if body is not None and self.command != "HEAD" else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, method: str, path: str):
        if (method, path) in self.answers:
            return self.answers[(method, path)]
        if method == "HEAD":
            return 404, None  # no alias, no index yet
        if method == "PUT" and path.endswith("-000001"):
            return 200, {"acknowledged": True, "shards_acknowledged": True, "index": path.strip("/")}
        return 200, ACK

    def sent(self, method: str, path: str) -> dict:
        return next(r for r in self.requests if (r["method"], r["path"]) == (method, path))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def double():
    cluster = RecordingCluster()
    yield cluster
    cluster.close()


def _settings(url: str, **overrides) -> ElasticsearchSettings:
    return ElasticsearchSettings(url=url, request_timeout_s=2.0, max_retries=0, **overrides)


def test_the_default_ilm_policy_is_hot_rollover_10gb_7d_warm_30d_shrink_forcemerge_delete_90d(double):
    es_setup.install(make_client(_settings(double.url), environ={}), _settings(double.url))
    body = double.sent("PUT", "/_ilm/policy/theo-call-data")["body"]
    assert body == {"policy": {
        "_meta": {"managed_by": "theo"},
        "phases": {
            "hot": {"min_age": "0ms", "actions": {"rollover": {"max_primary_shard_size": "10gb", "max_age": "7d"}}},
            "warm": {"min_age": "30d", "actions": {"shrink": {"number_of_shards": 1},
                                                   "forcemerge": {"max_num_segments": 1}}},
            "delete": {"min_age": "90d", "actions": {"delete": {}}},
        },
    }}


def test_every_ilm_number_comes_from_the_config_and_delete_can_wait_for_a_snapshot(double):
    ilm = IlmSettings(policy_name="theo-long", rollover_max_primary_shard_size="50gb", rollover_max_age="1d",
                      warm_min_age="14d", warm_shrink_shards=2, warm_forcemerge_segments=4, delete_min_age="365d",
                      wait_for_snapshot_policy="nightly-snapshots")
    settings = _settings(double.url, ilm=ilm)
    es_setup.install(make_client(settings, environ={}), settings)
    phases = double.sent("PUT", "/_ilm/policy/theo-long")["body"]["policy"]["phases"]
    assert phases["hot"]["actions"]["rollover"] == {"max_primary_shard_size": "50gb", "max_age": "1d"}
    assert phases["warm"] == {"min_age": "14d", "actions": {"shrink": {"number_of_shards": 2},
                                                            "forcemerge": {"max_num_segments": 4}}}
    assert phases["delete"] == {"min_age": "365d", "actions": {
        "wait_for_snapshot": {"policy": "nightly-snapshots"}, "delete": {}}}
    template = double.sent("PUT", "/_index_template/theo-turns")["body"]
    assert template["template"]["settings"]["index.lifecycle.name"] == "theo-long"


def test_templates_then_the_rollover_bootstrap_in_the_documented_shapes_and_order(double):
    settings = _settings(double.url)
    done = es_setup.install(make_client(settings, environ={}), settings)
    order = [(r["method"], r["path"]) for r in double.requests]
    assert order == [
        ("PUT", "/_ilm/policy/theo-call-data"),
        ("PUT", "/_index_template/theo-turns"), ("PUT", "/_index_template/theo-calls"),
        ("HEAD", "/_alias/theo-turns"), ("HEAD", "/theo-turns"), ("PUT", "/theo-turns-000001"),
        ("HEAD", "/_alias/theo-calls"), ("HEAD", "/theo-calls"), ("PUT", "/theo-calls-000001"),
    ]
    for alias in ("theo-turns", "theo-calls"):
        template = double.sent("PUT", f"/_index_template/{alias}")["body"]
        assert template["index_patterns"] == [f"{alias}-*"] and template["priority"] == 200
        assert template["_meta"] == {"managed_by": "theo", "schema_version": 1}
        assert template["template"]["settings"] == {
            "number_of_shards": 1, "number_of_replicas": 1,
            "index.lifecycle.name": "theo-call-data", "index.lifecycle.rollover_alias": alias,
        }
        assert template["template"]["mappings"]["dynamic"] == "strict"
        # The bootstrap index: the alias's write index, named so rollover can count on.
        assert double.sent("PUT", f"/{alias}-000001")["body"] == {"aliases": {alias: {"is_write_index": True}}}
    assert "write alias theo-calls -> theo-calls-000001" in done
    # Stack mode: the client's compatibility mimetype, as a self-hosted 9.x cluster expects.
    assert double.requests[0]["headers"]["content-type"] == "application/vnd.elasticsearch+json; compatible-with=9"


def test_serverless_mode_sends_no_shard_settings_and_no_lifecycle_when_ilm_is_off(double):
    settings = _settings(double.url, server_mode="serverless", ilm=IlmSettings(enabled=False))
    es_setup.install(make_client(settings, environ={}), settings)
    assert not any("_ilm" in r["path"] for r in double.requests)
    assert double.sent("PUT", "/_index_template/theo-turns")["body"]["template"]["settings"] == {}
    assert double.requests[0]["headers"]["content-type"] == "application/json"


def test_an_existing_alias_is_left_alone(double):
    double.answers[("HEAD", "/_alias/theo-turns")] = (200, None)
    double.answers[("HEAD", "/_alias/theo-calls")] = (200, None)
    settings = _settings(double.url)
    es_setup.install(make_client(settings, environ={}), settings)
    assert not any(r["method"] == "PUT" and r["path"].endswith("-000001") for r in double.requests)


def test_a_cluster_that_refuses_ilm_is_a_typed_error_naming_the_step_and_the_reason(double):
    double.answers[("PUT", "/_ilm/policy/theo-call-data")] = (403, {"error": {
        "root_cause": [{"type": "security_exception", "reason": "current license is non-compliant for [ilm]"}],
        "type": "security_exception", "reason": "current license is non-compliant for [ilm]"}, "status": 403})
    settings = _settings(double.url)
    with pytest.raises(CallDataSetupError) as failure:
        es_setup.install(make_client(settings, environ={}), settings)
    assert failure.value.step == "PUT _ilm/policy/theo-call-data"
    assert failure.value.reason == "403 security_exception: current license is non-compliant for [ilm]"
    assert not any("_index_template" in r["path"] for r in double.requests)  # stopped at the refusal


def test_an_unacknowledged_template_or_an_index_squatting_on_the_alias_name_is_an_error(double):
    double.answers[("PUT", "/_index_template/theo-calls")] = (200, {"acknowledged": False})
    settings = _settings(double.url)
    with pytest.raises(CallDataSetupError, match="did not acknowledge"):
        es_setup.install(make_client(settings, environ={}), settings)
    del double.answers[("PUT", "/_index_template/theo-calls")]
    double.answers[("HEAD", "/theo-turns")] = (200, None)  # a concrete index, auto-created by a stray write
    with pytest.raises(CallDataSetupError, match="concrete index named 'theo-turns'"):
        es_setup.install(make_client(settings, environ={}), settings)


def test_the_api_key_and_password_come_from_the_environment_or_a_file_and_are_never_logged(double, tmp_path, caplog):
    with caplog.at_level("DEBUG"):
        settings = _settings(double.url)
        es_setup.install(make_client(settings, environ={"THEO_ES_API_KEY": "c2VjcmV0LWtleQ=="}), settings)
        assert double.requests[0]["headers"]["authorization"] == "ApiKey c2VjcmV0LWtleQ=="
        secret = tmp_path / "es-password"
        secret.write_text("p4ss-w0rd\n")
        settings = _settings(double.url, username="theo-writer", password_file=str(secret))
        es_setup.install(make_client(settings, environ={}), settings)
        assert double.requests[-1]["headers"]["authorization"] == "Basic dGhlby13cml0ZXI6cDRzcy13MHJk"
    assert "c2VjcmV0LWtleQ" not in caplog.text and "p4ss-w0rd" not in caplog.text
    with pytest.raises(ConfigError, match="has no password"):
        make_client(_settings(double.url, username="theo-writer"), environ={})
