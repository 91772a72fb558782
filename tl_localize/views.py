"""Views of units: the texts that drive them, their activation on each token, what heads
write to them, as circuitsvis views (:class:`~tl_localize.views_html.HTMLView`, made in
:mod:`tl_localize.views_html`) shown inline in Jupyter and saved as standalone HTML, and as
tidy tables (:func:`top_stimuli`, :func:`head_writes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from .activations import iter_pooled, token_batches
from .contrast import Contrast
from .errors import LocalizeError, check_int
from .models import hf_tokenizer
from .protocol import Model, weight
from .sites import get_site
from .units import Units
from .views_html import HTMLView, ViewPart

__all__ = [
    "head_attention_view",
    "head_writes",
    "token_activations",
    "top_stimuli",
    "top_stimuli_view",
    "unit_tokens_view",
]


def token_activations(
    model: Model, text: str, units: Units, *, prepend_bos: bool | None = None
) -> tuple[list[str], Float[Tensor, "pos n_units"]]:
    """Per-token activations of each selected unit (row-major order) on one text."""
    units.check_model(model)
    return _unit_columns(model, text, units.site, units.indices(), prepend_bos)


def _unit_columns(
    model: Model, text: str, site_name: str, idx: Tensor, prepend_bos: bool | None
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
    model: Model,
    units: Units,
    texts: Sequence[str],
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

    if not isinstance(units, Units) or isinstance(texts, Units):
        raise LocalizeError("unit_tokens_view takes (model, units, texts).")
    units.check_model(model)
    idx = _ranked(units, order, max_units)
    labels = [f"L{layer}.{unit}" for layer, unit in idx.tolist()]
    parts = []
    for text in texts:
        tokens, acts = _unit_columns(model, text, units.site, idx, prepend_bos)
        view = cv.tokens.colored_tokens_multi(tokens, acts, labels)
        parts.append(ViewPart.from_circuitsvis(text, view))
    return HTMLView(parts)


def _texts(texts: Contrast | str | Sequence[str]) -> tuple[list[str], list[str | None]]:
    if isinstance(texts, str):
        texts = Contrast.builtin(texts)
    if isinstance(texts, Contrast):
        pairs = [(t, c) for c, items in texts.conditions.items() for t in items]
        return [t for t, _ in pairs], [c for _, c in pairs]
    texts = list(texts)
    if not texts:
        raise LocalizeError("No texts given: pass a list of texts or a Contrast.")
    return texts, [None] * len(texts)


def _ranked(units: Units, order: Float[Tensor, "layer unit"] | None, n: int) -> Tensor:
    idx = units.indices()
    if len(idx) == 0:
        raise LocalizeError("The unit set is empty: nothing to show.")
    if order is not None:
        idx = idx[order[units.mask].argsort(descending=True)]
    return idx[:n]


def top_stimuli(
    model: Model,
    units: Units,
    texts: Contrast | str | Sequence[str],
    *,
    order: Float[Tensor, "layer unit"] | None = None,
    n_units: int = 8,
    k: int = 3,
    pooling: str = "last",
    absolute: bool = True,
    batch_size: int = 32,
) -> pd.DataFrame:
    """The texts on which each selected unit responds most.

    Args:
        texts: a list of texts, a :class:`Contrast` or a built-in contrast's name (then a
            ``condition`` column says where each text comes from).
        order: a score per unit (e.g. the localizer's t): show the first ``n_units`` by it.
        pooling: ``last`` token (the language localizer's) or ``mean``.
        absolute: rank by |activation| (as the localizer's t-test does) or by activation.

    Returns:
        One row per (unit, rank): ``unit`` (``L<layer>.<index>``), ``layer``, ``index``,
        ``rank``, ``text``, ``condition``, ``activation`` (pooled, signed).
    """
    units.check_model(model)
    check_int("n_units", n_units, 1)
    check_int("k", k, 1)
    all_texts, conditions = _texts(texts)
    idx = _ranked(units, order, n_units)
    site = get_site(units.site)
    layers = sorted(set(idx[:, 0].tolist()))
    names = [site.hook_name(layer) for layer in layers]
    acts = torch.empty(len(all_texts), len(idx))
    for index, pooled in iter_pooled(
        model, all_texts, names, pooling=pooling, batch_size=batch_size
    ):
        for column, (layer, unit) in enumerate(idx.tolist()):
            acts[index, column] = pooled[site.hook_name(layer)][:, unit].float()
    rank_by = acts.abs() if absolute else acts
    rows = []
    for column, (layer, unit) in enumerate(idx.tolist()):
        best = rank_by[:, column].argsort(descending=True)[:k].tolist()
        for rank, i in enumerate(best, start=1):
            rows.append(
                {
                    "unit": f"L{layer}.{unit}",
                    "layer": layer,
                    "index": unit,
                    "rank": rank,
                    "text": all_texts[i],
                    "condition": conditions[i],
                    "activation": float(acts[i, column]),
                }
            )
    return pd.DataFrame(rows)


def top_stimuli_view(
    model: Model,
    units: Units,
    texts: Contrast | str | Sequence[str],
    *,
    prepend_bos: bool | None = None,
    **kwargs: Any,
) -> HTMLView:
    """:func:`top_stimuli` as colored tokens: the top texts of all shown units, one after
    another; choose a unit in the view to color every token by that unit's activation.
    Keyword arguments are :func:`top_stimuli`'s."""
    import circuitsvis as cv

    table = top_stimuli(model, units, texts, **kwargs)
    labels = list(dict.fromkeys(table["unit"]))
    idx = torch.tensor(
        table.drop_duplicates("unit")[["layer", "index"]].to_numpy(), dtype=torch.long
    )
    tokens: list[str] = []
    values = []
    for text in dict.fromkeys(table["text"]):
        text_tokens, acts = _unit_columns(model, text, units.site, idx, prepend_bos)
        tokens += [*text_tokens, "\n"]
        values += [acts.float(), torch.zeros(1, len(labels))]
    view = cv.tokens.colored_tokens_multi(tokens, torch.cat(values), labels)
    summary = table.pivot_table(index="rank", columns="unit", values="text", aggfunc="first")
    table = summary[labels].reset_index()
    return HTMLView([ViewPart.from_circuitsvis("Top stimuli per unit", view, table)])


def head_writes(
    model: Model,
    units: Units,
    texts: Sequence[str],
    *,
    batch_size: int = 16,
    prepend_bos: bool | None = None,
) -> pd.DataFrame:
    """The attention heads that write most into selected residual-stream units.

    A head in layer j writes ``z_h @ W_O[j, h]`` into the residual stream, which every
    ``resid_post`` of layer j or later carries. Its score is the mean over the texts' tokens
    of ``|write|`` on each selected unit downstream of it, summed over those units.

    Returns:
        One row per head, highest ``write`` first: ``layer``, ``head``, ``write``,
        ``n_downstream`` (selected units at its layer or later) and ``write_per_unit``.
    """
    if units.site != "resid_post":
        raise LocalizeError(
            f"head_writes needs residual-stream units (site 'resid_post'), not {units.site!r}."
        )
    units.check_model(model)
    if len(units) == 0:
        raise LocalizeError("The unit set is empty: no head writes into it.")
    n_layers = units.n_layers
    # downstream[j, i]: how many selected units of dimension i sit at layer j or later
    downstream = units.mask.flip(0).cumsum(0).flip(0).float()
    last = int(units.layers()[-1])
    names = [get_site("attn_z").hook_name(layer) for layer in range(last + 1)]
    w_o = weight(model, "W_O").detach().float()
    n_heads = int(w_o.shape[1])
    total = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    n_tokens = 0
    for batch in token_batches(model, list(texts), batch_size=batch_size, prepend_bos=prepend_bos):
        with torch.no_grad():
            _, cache = model.run_with_cache(
                batch.input_ids,
                attention_mask=batch.attention_mask,
                names_filter=lambda n: n in names,
            )
        weights = batch.attention_mask.float()
        n_tokens += int(weights.sum())
        for layer in range(last + 1):
            dims = downstream[layer].nonzero().flatten()
            if len(dims) == 0:
                continue
            z = cache[names[layer]].float()
            write = torch.einsum("bphe,hed->bphd", z, w_o[layer][:, :, dims]).abs()
            per_head = torch.einsum("bphd,d,bp->h", write, downstream[layer, dims], weights)
            total[layer] += per_head.double()
    layers, heads = torch.meshgrid(torch.arange(n_layers), torch.arange(n_heads), indexing="ij")
    n_down = downstream.sum(1, keepdim=True).expand(n_layers, n_heads)
    frame = pd.DataFrame(
        {
            "layer": layers.flatten().numpy(),
            "head": heads.flatten().numpy(),
            "write": (total / n_tokens).flatten().numpy(),
            "n_downstream": n_down.flatten().numpy().astype(int),
        }
    )
    frame["write_per_unit"] = frame["write"] / frame["n_downstream"].clip(lower=1)
    return frame.sort_values("write", ascending=False, ignore_index=True)


def head_attention_view(
    model: Model,
    heads: pd.DataFrame | Sequence[tuple[int, int]],
    texts: Sequence[str],
    *,
    prepend_bos: bool | None = None,
) -> HTMLView:
    """Attention patterns of some heads (``(layer, head)`` pairs, or the first rows of
    :func:`head_writes`) on each text, e.g. one sentence and one non-word list."""
    import circuitsvis as cv

    if isinstance(heads, pd.DataFrame):
        heads = list(zip(heads["layer"].tolist(), heads["head"].tolist(), strict=True))
    heads = [(int(layer), int(head)) for layer, head in heads]
    if not heads:
        raise LocalizeError("No heads given: pass (layer, head) pairs or head_writes(...).")
    n_heads = int(model.cfg.n_heads)
    bad = [h for h in heads if not (0 <= h[0] < model.cfg.n_layers and 0 <= h[1] < n_heads)]
    if bad:
        raise LocalizeError(
            f"Head {bad[0]} does not exist: this model has {model.cfg.n_layers} layers of "
            f"{n_heads} heads."
        )
    names = {f"blocks.{layer}.attn.hook_pattern" for layer, _ in heads}
    parts = []
    for text in texts:
        batch = token_batches(model, [text], batch_size=1, prepend_bos=prepend_bos)[0]
        with torch.no_grad():
            _, cache = model.run_with_cache(batch.input_ids, names_filter=lambda n: n in names)
        patterns = torch.stack(
            [cache[f"blocks.{layer}.attn.hook_pattern"][0, head] for layer, head in heads]
        )
        tokens = [hf_tokenizer(model).decode([t]) for t in batch.input_ids[0].tolist()]
        view = cv.attention.attention_heads(
            tokens=tokens,
            attention=patterns.float(),
            attention_head_names=[f"L{layer}H{head}" for layer, head in heads],
        )
        parts.append(ViewPart.from_circuitsvis(text, view))
    return HTMLView(parts)
