"""Circuitsvis views of units, shown inline in Jupyter and saved as standalone HTML.

circuitsvis' own ``_repr_html_`` probes the internet to choose between a CDN script and an
inlined one; these views always inline the JavaScript, so they work offline and in saved
reports.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from .activations import token_batches
from .errors import LocalizeError
from .models import hf_tokenizer
from .sites import get_site
from .units import Units

__all__ = ["HTMLView", "token_activations", "unit_tokens_view"]


class HTMLView:
    """Self-contained HTML with ``_repr_html_`` (Jupyter) and :meth:`save`."""

    def __init__(self, html: str) -> None:
        self.html = html

    def _repr_html_(self) -> str:
        return self.html

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(f"<!DOCTYPE html><html><body>{self.html}</body></html>", "utf-8")
        return path


def token_activations(
    model: Any, text: str, units: Units, *, prepend_bos: bool | None = None
) -> tuple[list[str], Float[Tensor, "pos n_units"]]:
    """Per-token activations of each selected unit (row-major order) on one text."""
    units.check_model(model)
    return _unit_columns(model, text, units.site, units.indices(), prepend_bos)


def _unit_columns(
    model: Any, text: str, site_name: str, idx: Tensor, prepend_bos: bool | None
) -> tuple[list[str], Tensor]:
    if len(idx) == 0:
        raise LocalizeError("The unit set is empty: nothing to show.")
    site = get_site(site_name)
    batch = token_batches(model, [text], batch_size=1, prepend_bos=prepend_bos)[0]
    names = {site.hook_name(layer) for layer in idx[:, 0].tolist()}
    with torch.no_grad():
        _, cache = model.run_with_cache(batch.input_ids, names_filter=lambda n: n in names)
    columns = []
    for layer, unit in idx.tolist():
        acts = cache[site.hook_name(layer)][0]
        columns.append(acts.reshape(acts.shape[0], -1)[:, unit])
    tokens = [hf_tokenizer(model).decode([t]) for t in batch.input_ids[0].tolist()]
    return tokens, torch.stack(columns, dim=1)


def unit_tokens_view(
    model: Any,
    texts: Sequence[str],
    units: Units,
    *,
    order: Float[Tensor, "layer unit"] | None = None,
    max_units: int = 12,
    prepend_bos: bool | None = None,
) -> HTMLView:
    """Colored tokens: each selected unit's activation on each token of each text.

    Args:
        texts: a few texts, e.g. one sentence and one non-word list.
        units: the units to show: the first ``max_units`` by ``order`` (a score per unit,
            e.g. the localizer's t; highest first), or in layer order without it.
    """
    import circuitsvis as cv

    units.check_model(model)
    idx = units.indices()
    if order is not None:
        idx = idx[order[units.mask].argsort(descending=True)]
    idx = idx[:max_units]
    labels = [f"L{layer}.{unit}" for layer, unit in idx.tolist()]
    parts = []
    for text in texts:
        tokens, acts = _unit_columns(model, text, units.site, idx, prepend_bos)
        view = cv.tokens.colored_tokens_multi(tokens, acts, labels)
        parts.append(f"<h4>{html.escape(text)}</h4>{view.local_src}")
    return HTMLView("\n".join(parts))
