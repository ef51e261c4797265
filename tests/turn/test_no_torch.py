import subprocess
import sys

MODULES = ["backchannel", "endpointer", "entities", "fillers", "memory", "prompt",
           "sentence_splitter", "settings", "spoken_digits", "tools", "turn_model",
           "turn_model_assets", "vad"]


def test_turn_package_never_imports_torch_or_silero_vad():
    """In a fresh interpreter: import every module, build the VAD and the turn model."""
    code = (
        "import sys\n"
        + "".join(f"import theo_ray.turn.{m}\n" for m in MODULES)
        + "from theo_ray.turn.vad import SileroVad\n"
        "from theo_ray.turn.turn_model import SmartTurn\n"
        "SileroVad(); SmartTurn()\n"
        "bad = [m for m in ('torch', 'silero_vad', 'transformers', 'pipecat') if m in sys.modules]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
