"""Minimal pairs: is the grammatical sentence more probable than its ungrammatical twin?

Scoring: each sentence's summed log-probability, BOS prepended so that every word is scored,
no length normalization (BLiMP's ``simple_LM_method``: the two sentences of a pair mostly
have the same length). An item is correct when the good sentence's log-probability is
strictly higher.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..data.pairs import load_blimp, minimal_pairs_frame
from ..protocol import Hooks, Model
from ..scoring import token_logprobs

__all__ = ["blimp", "minimal_pairs"]


def minimal_pairs(
    model: Model,
    pairs: Any,
    *,
    hooks: Hooks = (),
    batch_size: int = 64,
    progress: bool = True,
) -> pd.DataFrame:
    """Score minimal pairs; one row per pair with ``logprob_good``, ``logprob_bad``,
    ``correct`` and the pair's other columns (identifiers) kept.

    >>> minimal_pairs(model, [("the dogs run", "the dogs runs")], progress=False).shape
    (1, 5)
    """
    frame = minimal_pairs_frame(pairs)
    texts = list(frame["sentence_good"]) + list(frame["sentence_bad"])
    scores = token_logprobs(
        model, texts, hooks=hooks, batch_size=batch_size, progress=progress, desc="pairs"
    )
    n = len(frame)
    frame = frame.copy()
    frame["logprob_good"] = [float(s.sum()) for s in scores[:n]]
    frame["logprob_bad"] = [float(s.sum()) for s in scores[n:]]
    frame["correct"] = frame["logprob_good"] > frame["logprob_bad"]
    return frame


def blimp(
    model: Model,
    source: str | Path,
    *,
    paradigms: Sequence[str] | None = None,
    n_per_paradigm: int | None = None,
    hooks: Hooks = (),
    batch_size: int = 64,
    progress: bool = True,
) -> pd.DataFrame:
    """Score BLiMP: one row per pair with a ``paradigm`` column and ``correct``."""
    pairs = load_blimp(source, paradigms, n_per_paradigm)
    return minimal_pairs(model, pairs, hooks=hooks, batch_size=batch_size, progress=progress)
