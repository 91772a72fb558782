"""The lineage of a selected set over the checkpoints of one training run.

Two checkpoints of a model are two models for :class:`Units` (their weights differ), so their
sets cannot be combined with ``&``; their masks can still be compared unit by unit, since
the architecture and the site are the same. :func:`unit_lineage` does that for an ordered
list of checkpoints: per checkpoint the units per layer, the Jaccard index with the previous
checkpoint and with the final one, and the first checkpoint from which the set stays at or
above a threshold of Jaccard with the final set (``stable_from``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import LocalizeError

if TYPE_CHECKING:  # the study's tables import no model code
    from ..units import Units

__all__ = ["STABLE_JACCARD", "unit_lineage"]

STABLE_JACCARD = 0.8


def _jaccard(a: Units, b: Units) -> float:
    union = int((a.mask | b.mask).sum())
    return int((a.mask & b.mask).sum()) / union if union else 0.0


def _step(checkpoint: str) -> float:
    """The training step a checkpoint's name ends in (``step1000``, ``ckpt-200``), if any."""
    found = re.search(r"(\d+)\D*$", checkpoint)
    return float(found.group(1)) if found else np.nan


def unit_lineage(
    sets: Sequence[Units], checkpoints: Sequence[str], *, threshold: float = STABLE_JACCARD
) -> pd.DataFrame:
    """One row per checkpoint (in training order): ``checkpoint``, ``step`` (the number its
    name ends in, else NaN), ``n_units``, ``per_layer`` (the selected units per layer,
    space-separated), ``jaccard_previous``, ``jaccard_final``, ``stable`` (this checkpoint
    and every later one are at or above ``threshold`` of Jaccard with the final set) and
    ``stable_from`` (the first stable checkpoint, the same on every row).

    Example::

        >>> a = loc.units
        >>> unit_lineage([a, a], ["step1", "step2"])[["checkpoint", "jaccard_final"]]
          checkpoint  jaccard_final
        0      step1            1.0
        1      step2            1.0
    """
    sets, checkpoints = list(sets), [str(c) for c in checkpoints]
    if not sets or len(sets) != len(checkpoints):
        raise LocalizeError(
            f"unit_lineage needs one set per checkpoint (got {len(sets)} sets and "
            f"{len(checkpoints)} checkpoint names)."
        )
    if len(set(checkpoints)) != len(checkpoints):
        raise LocalizeError(f"Checkpoint names repeat in {checkpoints}; name each once.")
    if not 0 < threshold <= 1:
        raise LocalizeError(f"threshold must be in (0, 1], got {threshold!r}.")
    first = sets[0]
    for name, units in zip(checkpoints, sets, strict=True):
        if (units.site, tuple(units.mask.shape)) != (first.site, tuple(first.mask.shape)):
            raise LocalizeError(
                f"Checkpoint {name!r} has units at {units.site!r} of shape "
                f"{tuple(units.mask.shape)}, the first {first.site!r} of shape "
                f"{tuple(first.mask.shape)}: checkpoints of one run share the architecture "
                "and the site."
            )
    final = sets[-1]
    rows = []
    for i, (name, units) in enumerate(zip(checkpoints, sets, strict=True)):
        counts = units.mask.sum(1).tolist()
        rows.append(
            {
                "checkpoint": name,
                "step": _step(name),
                "n_units": len(units),
                "per_layer": " ".join(str(int(c)) for c in counts),
                "jaccard_previous": _jaccard(units, sets[i - 1]) if i else np.nan,
                "jaccard_final": _jaccard(units, final),
            }
        )
    frame = pd.DataFrame(rows)
    above = (frame["jaccard_final"] >= threshold).to_numpy()
    stable = np.flip(np.logical_and.accumulate(np.flip(above)))  # at or above from here on
    frame["stable"] = stable
    # None only where the final set is empty (no Jaccard index with it)
    frame["stable_from"] = checkpoints[int(np.argmax(stable))] if stable.any() else None
    return frame
