"""Perplexity of texts (BOS prepended, every token scored)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..errors import LocalizeError
from ..scoring import token_logprobs

__all__ = ["perplexity"]


def perplexity(
    model: Any,
    texts: Sequence[str],
    *,
    hooks: Sequence[tuple[str, Any]] = (),
    batch_size: int = 64,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per text: ``n_tokens``, ``nll`` (mean negative log-likelihood per token, nats)
    and ``perplexity``. The corpus perplexity is
    ``exp((df.nll * df.n_tokens).sum() / df.n_tokens.sum())``."""
    if isinstance(texts, str) or not len(texts):
        raise LocalizeError("perplexity needs a non-empty list of texts.")
    scores = token_logprobs(
        model, list(texts), hooks=hooks, batch_size=batch_size, progress=progress, desc="ppl"
    )
    rows = []
    for text, logprobs in zip(texts, scores, strict=True):
        nll = float(-logprobs.mean())
        rows.append(
            {"text": text, "n_tokens": len(logprobs), "nll": nll, "perplexity": math.exp(nll)}
        )
    return pd.DataFrame(rows)
