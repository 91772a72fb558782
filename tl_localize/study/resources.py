"""What a study's models need and get: memory estimated before a model loads, CPU shares
in proportion to the models' sizes, the GPUs a model's actor asks for.

Nothing here imports torch at import time (``study status`` reads a study folder without
it); the functions that need it import it when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .spec import ModelSpec

__all__ = [
    "BASELINE_BYTES",
    "activation_bytes",
    "cpu_shares",
    "estimate_memory",
    "gib",
    "memory_pool",
    "model_gpus",
    "read_size",
    "thread_shares",
]

# What a worker process holds besides the model: the interpreter with torch, transformers,
# TransformerLens and this package imported, a tokenizer and the thread pools (measured
# 0.61-0.67 GiB on the CPU with a model of 3M parameters); on a GPU, the CUDA context and
# the kernels' workspace, which come out of the device's free memory.
BASELINE_BYTES = {"cpu": 600 * 2**20, "cuda": 512 * 2**20}


def read_size(spec: ModelSpec) -> dict[str, int] | None:
    """The number of parameters and the shape (width, MLP width, layers, heads, vocabulary),
    read from the config or the GGUF header (no weights loaded), when known."""
    from ..models import default_model_path

    source = Path(spec.spec) if spec.spec is not None else default_model_path()
    if source.is_file() and source.suffix == ".gguf":
        try:
            from gguf import GGUFReader

            reader = GGUFReader(str(source))
            arch = reader.fields["general.architecture"].contents()

            def field(key: str) -> int:
                return int(reader.fields[f"{arch}.{key}"].contents())

            d_model = field("embedding_length")
            return {
                "parameters": int(sum(int(t.n_elements) for t in reader.tensors)),
                "d_model": d_model,
                "d_mlp": field("feed_forward_length"),
                "n_layers": field("block_count"),
                "n_heads": field("attention.head_count"),
                "vocab": len(reader.fields["tokenizer.ggml.tokens"].contents()),
            }
        except (ImportError, OSError, ValueError, KeyError, TypeError):
            return None
    folder = source / spec.revision if source.is_dir() and spec.revision else source
    if not folder.is_dir():
        return None  # a hub name: not known offline
    try:
        from accelerate import init_empty_weights
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(folder)
        with init_empty_weights():
            empty = AutoModelForCausalLM.from_config(config)
        empty.tie_weights()  # tied embeddings count once (from_config leaves them apart)
        text = config.get_text_config()

        def first(*names: str) -> int | None:
            found = (getattr(text, name, None) for name in names)
            return next((int(v) for v in found if v is not None), None)

        d_model = first("hidden_size", "n_embd", "d_model") or 0
        return {
            "parameters": int(sum(p.numel() for p in empty.parameters())),
            "d_model": d_model,
            "d_mlp": first("intermediate_size", "n_inner", "ffn_dim") or 4 * d_model,
            "n_layers": first("num_hidden_layers", "n_layer", "num_layers") or 0,
            "n_heads": first("num_attention_heads", "n_head") or 0,
            "vocab": first("vocab_size") or 0,
        }
    except (OSError, ValueError, KeyError):
        return None


def activation_bytes(size: dict[str, int], batch: int, tokens: int, element: int) -> int:
    """The largest pass of a study over one batch of ``batch x tokens`` positions, in bytes:
    the logits in the model's dtype with two float32 copies (the scored copy and its
    log-softmax), one block's intermediates (four residual-width tensors in the dtype and
    one in float32 inside the norm, three MLP-width tensors) and the attention scores and
    their softmax in float32; plus the pooled activations of one batch at every layer
    (float32) and the running moments (eight float64 numbers per unit)."""
    per_position = (
        size["vocab"] * (element + 8)
        + size["d_model"] * (4 * element + 4)
        + size["d_mlp"] * 3 * element
        + size["n_heads"] * tokens * 2 * 4
    )
    units = size["n_layers"] * size["d_model"]
    return batch * tokens * per_position + units * (batch * 4 + 8 * 8)


def estimate_memory(spec: ModelSpec, batch_size: int = 32, tokens: int = 128) -> dict[str, Any]:
    """What a model needs, before it loads, and what the device has available.

    needed = baseline + weights + activations, where
    - baseline is what a worker holds besides the model (:data:`BASELINE_BYTES`: 600 MiB of
      interpreter, libraries and tokenizer on the CPU; 512 MiB of CUDA context on a GPU);
    - weights are the parameters (counted from the config or the GGUF header, no weights
      read) times the bytes of the dtype that ``spec.dtype`` resolves to on ``spec.device``;
    - activations are the largest pass over one batch of ``batch_size`` texts of ``tokens``
      tokens: ``batch x tokens x (vocab x (e + 8) + d_model x (4e + 4) + d_mlp x 3e +
      heads x tokens x 8)`` bytes for an element size ``e`` (logits and their float32
      copies, one block's intermediates, attention scores), plus pooled activations and
      running moments (``n_layers x d_model x (4 batch + 64)``).

    Within 2% of the peak resident set measured for random-init models of SmolLM2-135M's,
    360M's and 1.7B's shapes in float32 (``benchmarks/scale.py``, docs/benchmarks.md).
    ``parameters`` (and so ``needed_bytes`` and ``fits``) is None where the size cannot be
    read offline (a hub name). ``device`` names the memory the model takes its share of
    (``"cpu"``, ``"cuda:0"``; None for a ``device_map``, which places it itself).
    """
    import psutil  # type: ignore[import-untyped]
    import torch

    from ..models import resolve_dtype

    dtype = resolve_dtype(spec.dtype, spec.device)
    element = torch.tensor([], dtype=dtype).element_size()
    size = read_size(spec)
    n_params = None if size is None else size["parameters"]
    weights = None if n_params is None else n_params * element
    activations = 0 if size is None else activation_bytes(size, batch_size, tokens, element)
    device = spec.device or ("cuda" if torch.cuda.is_available() else "cpu")  # None: auto
    on_cuda = device.startswith("cuda")
    baseline = BASELINE_BYTES["cuda" if on_cuda else "cpu"]
    if spec.device_map is not None:
        available = None  # placement is accelerate's; offloading makes it fit
    elif on_cuda and torch.cuda.is_available():
        available = int(torch.cuda.mem_get_info(torch.device(device))[0])
    else:
        available = int(psutil.virtual_memory().available)
    needed = None if weights is None else baseline + weights + activations
    return {
        "model": spec.label,
        "device": memory_pool(spec.device_map, device),
        "parameters": n_params,
        "dtype": str(dtype).removeprefix("torch."),
        "weights_bytes": weights,
        "activation_bytes": activations,
        "baseline_bytes": baseline,
        "needed_bytes": needed,
        "available_bytes": available,
        "fits": None if needed is None or available is None else needed <= available,
    }


def memory_pool(device_map: Any, device: str) -> str | None:
    """The memory a model loaded on ``device`` draws on: ``"cpu"`` or one GPU
    (``"cuda"`` is ``"cuda:0"``); None for a ``device_map`` (accelerate places it)."""
    if device_map is not None:
        return None
    if device.startswith("cuda"):
        return device if ":" in device else f"{device}:0"
    return "cpu"


def gib(value: int | None) -> str:
    return "unknown" if value is None else f"{value / 2**30:.2f} GiB"


def cpu_shares(total: int, sizes: dict[str, int | None], active: list[str]) -> dict[str, float]:
    """Each model's share of ``total`` CPUs among the ``active`` ones, in proportion to the
    models' parameter counts (the work of a job grows with them); a model of unknown size
    counts as the largest known one."""
    known = [v for v in sizes.values() if v]
    default = max(known) if known else 1
    weight = {label: float(sizes.get(label) or default) for label in active}
    whole = sum(weight.values())
    return {label: total * weight[label] / whole for label in active}


def thread_shares(total: int, sizes: dict[str, int | None], active: list[str]) -> dict[str, int]:
    """Threads per model running at once on a machine of ``total`` CPUs: its CPU share
    (:func:`cpu_shares`), rounded, at least one."""
    return {label: max(1, round(v)) for label, v in cpu_shares(total, sizes, active).items()}


def model_gpus(spec: ModelSpec) -> float:
    """The GPUs a model's actor asks Ray for."""
    import torch

    if spec.device is not None and spec.device.startswith("cuda"):
        return 1.0
    if spec.device_map is not None and torch.cuda.is_available():
        if isinstance(spec.max_memory, dict):
            return float(sum(1 for k in spec.max_memory if str(k) not in ("cpu", "disk")))
        return float(torch.cuda.device_count())
    return 0.0
