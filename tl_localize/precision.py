"""Tolerances that know their precision.

A model check compares two computations that are equal in exact arithmetic (a text alone
and right-padded in a batch; the bridge and plain transformers) and must tell ordinary
rounding from a wiring bug. Rounding depends on the dtype the model runs in and grows with
its depth, so a tolerance fixed for float32 (1e-4) aborts a bfloat16 run on ordinary
rounding (bfloat16 keeps 8 bits of mantissa: its machine epsilon is 2^-7 = 0.0078).

Two pieces, used by every check:

- :func:`scaled_difference` measures a difference element by element, each against its own
  size plus the typical size of its row (the median |value| of that layer's units). A plain
  "max difference over max value" is dominated by the few massive dimensions of a residual
  stream (|activation| in the hundreds against a median near 3 on the default model): a
  wiring bug that moves every ordinary unit by its own size moves that ratio by about 1%,
  the size of bfloat16's rounding. Scaled per element, rounding stays near epsilon while such
  a bug gives values near 1.
- :func:`check_tolerance` is ``max(floor, factor * eps(dtype) * sqrt(n_layers))``: rounding
  errors of independent layers add like a random walk. With the default factor (12), the
  default model (30 layers) gets 1e-4 in float32 (the floor), 0.064 in float16 and 0.51 in
  bfloat16. Measured there in bfloat16 (the same texts at other positions, which changes
  only rounding in a rotary model), rounding gives at most 0.034 at ``resid_post`` and 0.19
  at ``mlp_post`` (gated neurons: a product of two rounded values); a padded batch without
  its attention mask gives 3.4 and 8.5. In float32 the same sites give 7e-6 and 4e-5
  against the 1e-4 floor. The bound sits about 3x above the largest rounding and 7x below
  the smallest bug (``docs/method.md``).
"""

from __future__ import annotations

import math
import warnings

import torch
from jaxtyping import Float
from torch import Tensor

__all__ = [
    "FLOAT32_TOLERANCE",
    "PrecisionWarning",
    "check_tolerance",
    "machine_epsilon",
    "scaled_difference",
    "warn_precisions",
]

FLOAT32_TOLERANCE = 1e-4  # the checks' tolerance in float32 (the floor of every dtype's)
FACTOR = 12.0


def machine_epsilon(dtype: torch.dtype) -> float:
    """The dtype's machine epsilon (the gap between 1 and the next value): 2^-23 for
    float32, 2^-10 for float16, 2^-7 for bfloat16."""
    return float(torch.finfo(dtype).eps)


def check_tolerance(
    dtype: torch.dtype, n_layers: int, *, floor: float = FLOAT32_TOLERANCE, factor: float = FACTOR
) -> float:
    """The tolerance of a check on a model of ``n_layers`` layers computing in ``dtype``:
    ``max(floor, factor * eps(dtype) * sqrt(n_layers))``.

    >>> check_tolerance(torch.float32, 30)
    0.0001
    >>> round(check_tolerance(torch.bfloat16, 30), 3)
    0.513
    """
    return max(floor, factor * machine_epsilon(dtype) * math.sqrt(max(1, int(n_layers))))


def scaled_difference(a: Float[Tensor, "*rows width"], b: Float[Tensor, "*rows width"]) -> float:
    """The largest ``|a - b| / (|b| + median |b| of the row)`` (rows: layers, texts), with
    ``b`` the reference; 0 when both are zero everywhere.

    >>> b = torch.tensor([[500.0, 3.0, -2.0, 4.0]])
    >>> round(scaled_difference(b + torch.tensor([[4.0, 0.0, 0.0, 0.0]]), b), 4)  # rounding
    0.008
    >>> round(scaled_difference(b + torch.tensor([[0.0, 3.0, 2.0, 4.0]]), b), 2)  # a bug
    0.57
    """
    a, b = a.double(), b.double()
    size = b.abs()
    typical = size.median(dim=-1, keepdim=True).values
    scale = size + typical
    difference = (a - b).abs()
    ratio = torch.where(scale > 0, difference / scale.clamp_min(1e-300), difference)
    return float(ratio.max()) if ratio.numel() else 0.0


class PrecisionWarning(UserWarning):
    """Two results computed in different precisions are being compared."""


def warn_precisions(a: str | None, b: str | None, what: str) -> None:
    """Warn (once per place) when two known dtypes differ: the comparison holds rounding
    differences as well as real ones."""
    if a is not None and b is not None and a != b:
        warnings.warn(
            f"{what} were computed in different precisions ({a} and {b}); rounding alone "
            "changes a few units of a selection (Jaccard 0.988 between bfloat16 and float32 "
            "for a 1% set on the default model), so part of any difference is precision.",
            PrecisionWarning,
            stacklevel=3,
        )
