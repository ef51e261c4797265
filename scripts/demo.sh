#!/usr/bin/env bash
# Set up (idempotent) and run the main job: the demo phone call on the embedded CPU stack.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/theo demo "$@"
