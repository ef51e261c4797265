"""scripts/gpu-check.sh runs only on a GPU machine; CI checks that it parses (bash -n) and
that its inline Python compiles."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu-check.sh"


def test_gpu_check_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_gpu_check_inline_python_compiles():
    text = SCRIPT.read_text()
    blocks = re.findall(r"<<'EOF'\n(.*?)\nEOF\n", text, flags=re.S)
    assert len(blocks) == 2
    for block in blocks:
        compile(block, str(SCRIPT), "exec")
