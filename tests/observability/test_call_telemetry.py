"""One real call, then Theo's telemetry read back from where an operator would read it:
the spans at an OTLP/HTTP receiver on loopback (decoded with opentelemetry-proto), Theo's
metrics on the node's Ray metrics export (Prometheus text) and through a real Prometheus
scraping it, and the embedded JSON-lines files the notebooks read.

Real parts: Ray (token auth), the real STT (Whisper) and TTS (Kokoro) deployments, the
scripted LanguageModel TEST DOUBLE (same deployment path), a private call plane, real
SIP/RTP over loopback from the caller simulator. The deployments are this module's own
(`obs-*` applications), deployed with the receiver's endpoint in their environment.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio

from tests.observability.otlp_receiver import OtlpReceiver

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SESSION = "obs-call-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def receiver():
    with OtlpReceiver() as rx:
        yield rx


@pytest.fixture(scope="module")
def obs_config(theo_config, receiver, tmp_path_factory):
    out = tmp_path_factory.mktemp("obs-out")
    telemetry = msgspec.structs.replace(theo_config.telemetry, otlp_endpoint=receiver.endpoint, metrics_interval_s=0.5)
    llm = msgspec.structs.replace(theo_config.llm, backend="scripted", script=str(FIXTURES / "scripted_llm.toml"))
    paths = msgspec.structs.replace(theo_config.paths, output_dir=str(out))
    return msgspec.structs.replace(theo_config, telemetry=telemetry, llm=llm, paths=paths)


@pytest.fixture(scope="module")
def obs_handles(ray_cluster, obs_config):
    from ray import serve

    from theo_ray.model_handles import ModelHandles
    from theo_ray.runtime.serve_apps import APPS, build_application

    handles = {}
    for kind in ("stt", "llm", "tts"):
        app = f"obs-{kind}"
        serve.run(build_application(kind, obs_config), name=app, route_prefix=None)
        handles[kind] = serve.get_deployment_handle(APPS[kind][1], app_name=app)
    yield ModelHandles(**handles)
    for kind in ("stt", "llm", "tts"):
        try:
            serve.delete(f"obs-{kind}")
        except Exception:  # noqa: BLE001 - a health test may have deleted it
            pass


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def plane(obs_config, obs_handles):
    from theo_ray.bench.sim_calls import SimCallPlane, without_fillers

    # No filler: the caller's "agent ends" is the answer's end, not the filler's.
    plane = SimCallPlane(obs_config, without_fillers(obs_config.conversation), obs_handles, "obs", warm_pool_size=1)
    await plane.start()
    yield plane
    await plane.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def placed_call(plane, obs_config, tmp_path_factory):
    from theo_ray.bench.sim_calls import place_call, questions_scenario
    from theo_ray.sim.caller_voice import CallerVoice, CallerVoiceSettings

    voice = CallerVoice(tmp_path_factory.mktemp("voice"), CallerVoiceSettings(voice="pm_santa"),
                        model_cache_dir=obs_config.paths.model_cache)
    scenario = questions_scenario("obs", ["Quero saber da minha fatura."])
    call = await place_call(plane, scenario, voice, tmp_path_factory.mktemp("call"), SESSION)
    assert not call.error, call.error
    assert call.record is not None and call.record.turns, call.record
    return call


def _metrics_text(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()


def _samples(text: str, name: str, **labels: str) -> list[tuple[dict, float]]:
    from prometheus_client.parser import text_string_to_metric_families

    found = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                found.append((sample.labels, sample.value))
    return found


def _total(text: str, name: str, **labels: str) -> float:
    return sum(v for _, v in _samples(text, name, **labels))


async def test_one_trace_from_the_invite_through_the_call_actor_to_every_deployment(placed_call, receiver):
    trace_id = placed_call.record.trace_id
    assert trace_id, "the CallActor's record names no trace"
    wanted = {"sip.dialog", "sip.invite", "call", "turn", "stt.transcribe", "llm.generate", "tts.synthesize",
              "endpointing.wait", "stt.final", "llm.first_token", "llm.first_sentence", "tts.first_chunk",
              "rtp.first_packet"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        spans = [s for s in receiver.snapshot() if s.trace_id == trace_id]
        if wanted <= {s.name for s in spans}:
            break
        await asyncio.sleep(0.5)
    names = {s.name for s in spans}
    assert wanted <= names, f"missing {wanted - names}; got {sorted(names)}"
    services = {s.service for s in spans}
    assert {"theo-sip-gateway", "theo-call", "theo-deployment"} <= services, services
    dialog = next(s for s in spans if s.name == "sip.dialog")
    call = next(s for s in spans if s.name == "call")
    assert dialog.parent_id == "" and call.parent_id == dialog.span_id  # INVITE span is the root
    assert dialog.attributes["theo.session_id"] == SESSION and dialog.attributes["sip.end_reason"] == "caller_bye"
    invite = next(s for s in spans if s.name == "sip.invite")
    assert invite.parent_id == dialog.span_id and invite.end_ns <= call.end_ns
    for span in spans:
        if span.name == "turn":
            assert span.parent_id == call.span_id
        if span.name in ("stt.transcribe", "llm.generate", "tts.synthesize"):
            # Each model request carries the call's context: the replica's span is its child.
            assert span.parent_id == call.span_id, f"{span} is not a child of the call span"
    # The seed's tree under each answered turn: its stages as child spans, with attributes.
    answered = [s for s in spans if s.name == "turn" and s.attributes.get("llm.tokens", 0) > 0]
    assert answered, [s.attributes for s in spans if s.name == "turn"]
    stages = {"endpointing.wait", "stt.final", "llm.first_token", "llm.first_sentence", "tts.first_chunk",
              "rtp.first_packet"}
    for turn in answered:
        children = {s.name for s in spans if s.parent_id == turn.span_id}
        assert stages <= children, f"turn {turn.attributes.get('turn.index')}: missing {stages - children}"
        assert "turn.caller_text" not in turn.attributes  # privacy: transcripts are off by default
    stt = [s for s in spans if s.name == "stt.transcribe"]
    assert all(s.attributes["audio.seconds"] > 0 for s in stt)
    llm = [s for s in spans if s.name == "llm.generate" and s.attributes.get("llm.completion_tokens")]
    assert llm and all(s.attributes["llm.first_token_ms"] > 0 for s in llm)
    tts = [s for s in spans if s.name == "tts.synthesize"]
    assert any(s.attributes.get("tts.first_chunk_ms", 0) > 0 for s in tts)
    assert dialog.start_ns <= call.start_ns and dialog.end_ns >= call.start_ns
    # Every span in this trace belongs to this call: no other call's span leaked in.
    assert all(s.attributes.get("theo.session_id", SESSION) == SESSION for s in spans)


async def test_theo_metrics_on_the_node_metrics_export(placed_call, plane):
    import ray

    port = ray.nodes()[0]["MetricsExportPort"]
    labels = {"plane": plane.supervisor_name}
    deadline = time.monotonic() + 90
    text = ""
    while time.monotonic() < deadline:
        text = _metrics_text(port)
        if (_total(text, "ray_theo_calls_closed_total", **labels) >= 1
                and _total(text, "ray_theo_turn_stage_ms_count", stage="first_audio", **labels) >= 1
                and _total(text, "ray_theo_call_mos_count", **labels) >= 1
                and _total(text, "ray_theo_sip_answer_ms_count") >= 1):
            break
        await asyncio.sleep(1.0)
    assert _total(text, "ray_theo_calls_opened_total", **labels) >= 1
    assert _total(text, "ray_theo_calls_closed_total", reason="caller_bye", **labels) >= 1
    turns = len([t for t in placed_call.record.turns if t.first_rtp_at or t.filler_at])
    first_audio = _total(text, "ray_theo_turn_stage_ms_count", stage="first_audio", **labels)
    assert first_audio >= turns >= 1
    # Sane values: every first audio under 15 s, none under 5 ms.
    assert _total(text, "ray_theo_turn_stage_ms_bucket", stage="first_audio", le="15000.0", **labels) == first_audio
    assert _total(text, "ray_theo_turn_stage_ms_bucket", stage="first_audio", le="5.0", **labels) == 0
    for stage in ("endpointing", "stt_final", "llm_first_token", "tts_first_chunk", "first_content_audio"):
        assert _total(text, "ray_theo_turn_stage_ms_count", stage=stage, **labels) >= 1, stage
    # Loopback: a clean line (MOS above 3.5 even on a loaded machine), no loss.
    mos = _total(text, "ray_theo_call_mos_count", **labels)
    assert mos >= 1 and _total(text, "ray_theo_call_mos_bucket", le="3.5", **labels) == 0
    assert _total(text, "ray_theo_call_loss_ratio_bucket", le="0.001", **labels) == mos
    assert _samples(text, "ray_theo_warm_pool_size", **labels)
    assert _samples(text, "ray_theo_calls_active", **labels)[0][1] == 0
    shard = {"shard": plane.gateway_names[0]}
    assert _total(text, "ray_theo_sip_answer_ms_count", **shard) >= 1
    assert _total(text, "ray_theo_sip_answer_ms_bucket", le="5000.0", **shard) >= 1


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian package prometheus not installed")
async def test_a_real_prometheus_scrapes_theo_metrics(placed_call, plane, tmp_path):
    """Prometheus scrapes the cluster through Ray's own service-discovery file, written by
    Ray's own writer (the PrometheusServiceDiscoveryWriter the dashboard runs; the test
    cluster runs without a dashboard, so a subprocess runs the writer once against its GCS)
    and read by file_sd exactly as Ray wrote it."""
    import os
    import sys

    import ray

    writer = ("import sys\nfrom ray._private.metrics_agent import PrometheusServiceDiscoveryWriter\n"
              "w = PrometheusServiceDiscoveryWriter(sys.argv[1], sys.argv[2])\nw.write()\n"
              "print(w.get_target_file_name())")
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", writer, ray.get_runtime_context().gcs_address, str(tmp_path)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "RAY_AUTH_MODE": "token"})
    assert done.returncode == 0, done.stderr[-2000:]
    sd = Path(done.stdout.strip().splitlines()[-1])
    assert sd.name == "prom_metrics_service_discovery.json"
    node_targets = {f"{n['NodeManagerAddress']}:{n['MetricsExportPort']}" for n in ray.nodes() if n["Alive"]}
    assert node_targets <= set(json.loads(sd.read_text())[0]["targets"]), sd.read_text()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: ray\n    file_sd_configs:\n"
        f"      - files: ['{sd}']\n        refresh_interval: 1s\n"
    )
    port = _free_port()
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        query = f'sum(ray_theo_calls_closed_total{{plane="{plane.supervisor_name}"}})'
        value = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
                result = json.loads(urllib.request.urlopen(url, timeout=5).read())["data"]["result"]
                if result:
                    value = float(result[0]["value"][1])
                    break
            except OSError:
                pass
            await asyncio.sleep(1.0)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert value is not None and value >= 1, f"Prometheus never had {query}"
        stage_query = (f'histogram_quantile(0.95, sum by (le) (ray_theo_turn_stage_ms_bucket'
                       f'{{plane="{plane.supervisor_name}",stage="first_audio"}}))')
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": stage_query})
        result = json.loads(urllib.request.urlopen(url, timeout=5).read())["data"]["result"]
        assert result and 0 < float(result[0]["value"][1]) <= 15000, result
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


async def test_embedded_files_hold_the_call(placed_call, obs_config):
    """The JSON-lines spans (every process's file under traces/) and the call-data log."""
    out = Path(obs_config.paths.output_dir)
    trace_id = placed_call.record.trace_id
    deadline = time.monotonic() + 30
    names: set[str] = set()
    while time.monotonic() < deadline:
        names = set()
        for path in (out / "traces").glob("*.jsonl"):
            for line in path.read_text().splitlines():
                span = json.loads(line)
                if span["trace_id"] == trace_id:
                    names.add(span["name"])
        if {"sip.dialog", "call", "turn", "stt.transcribe"} <= names:
            break
        await asyncio.sleep(0.5)
    assert {"sip.dialog", "call", "turn", "stt.transcribe", "llm.generate", "tts.synthesize"} <= names, names
    logs = list(out.glob("planes/*/call-data/calls.jsonl"))
    assert logs, list(out.rglob("*"))[:20]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def _poll(url: str, status: int, timeout_s: float) -> tuple[int, dict]:
    deadline = time.monotonic() + timeout_s
    code, body = 0, b"{}"
    while time.monotonic() < deadline:
        code, body = await asyncio.to_thread(_get, url)
        if code == status:
            break
        await asyncio.sleep(0.2)
    return code, json.loads(body or b"{}")


async def test_ready_goes_503_when_a_deployment_replica_dies_and_back_to_200(placed_call, plane, obs_config):
    import uuid

    import ray
    from ray.util import list_named_actors

    from theo_ray.runtime.health import readiness_targets, start_health_server
    from theo_ray.runtime.serve_apps import APPS

    health = msgspec.structs.replace(obs_config.health, port=0, cache_s=0.2)
    config = msgspec.structs.replace(obs_config, health=health)
    targets = readiness_targets(config, plane, {k: (f"obs-{k}", APPS[k][1]) for k in ("stt", "llm", "tts")})
    actor, url = await start_health_server(config, targets, name=f"obs-health-{uuid.uuid4().hex[:6]}")
    try:
        assert await asyncio.to_thread(_get, f"{url}/health") == (200, b'{"status": "alive"}')
        code, ready = await _poll(f"{url}/ready", 200, 60)
        assert code == 200 and ready["ready"], ready
        names = {c["name"] for c in ready["checks"]}
        assert names == {f"gateway:{plane.gateway_names[0]}", "deployment:stt", "deployment:llm", "deployment:tts",
                         "warm_pool"}, names
        code, metrics = await asyncio.to_thread(_get, f"{url}/metrics")
        assert code == 200 and b'theo_ready{check="deployment:tts"} 1.0' in metrics and b"process_cpu" in metrics
        # The TTS replica dies: /ready says so, naming the check, until Serve has a new one.
        namespace = "serve"
        replicas = [e for e in list_named_actors(all_namespaces=True) if e["name"].startswith("SERVE_REPLICA::obs-tts#")]
        assert replicas
        for entry in replicas:
            namespace = entry["namespace"]
            ray.kill(ray.get_actor(entry["name"], namespace=namespace))
        code, ready = await _poll(f"{url}/ready", 503, 30)
        assert code == 503 and not ready["ready"], ready
        failed = {c["name"] for c in ready["checks"] if not c["ok"]}
        assert failed == {"deployment:tts"}, ready
        code, ready = await _poll(f"{url}/ready", 200, 180)
        assert code == 200, ready
    finally:
        await actor.stop.remote()
        ray.kill(actor)


@pytest.mark.parametrize("notebook", ["call_traces.ipynb", "conversation_quality.ipynb"])
async def test_notebooks_run_on_the_files_this_call_left(placed_call, obs_config, notebook, tmp_path, monkeypatch):
    """The notebooks executed with nbclient on this module's traces and call log: any cell
    that raises fails the test."""
    import nbformat
    from nbclient import NotebookClient

    out = Path(obs_config.paths.output_dir)
    log = next(out.glob("planes/*/call-data/calls.jsonl"))
    monkeypatch.setenv("THEO_TRACE_DIR", str(out / "traces"))
    monkeypatch.setenv("THEO_CALL_LOG", str(log))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    nb = nbformat.read(Path(__file__).resolve().parents[2] / "notebooks" / notebook, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    await asyncio.to_thread(client.execute)
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "calls" in outputs, outputs[-2000:]
