"""Ablation as TransformerLens hook patches.

:func:`ablation_hooks` turns a unit set into ``[(hook_name, fn), ...]`` for
``model.run_with_hooks(..., fwd_hooks=hooks)`` or ``model.hooks(fwd_hooks=hooks)``; each
function replaces the selected coordinates of its layer's activation, at every position, by
zero (``method="zero"``, the reference) or by the unit's mean over a reference text set
(``method="mean"``, see :func:`unit_means`). :func:`ablated` is the same as a context
manager.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from .activations import iter_pooled
from .errors import LocalizeError
from .models import hf_tokenizer
from .sites import get_site
from .units import Units

__all__ = [
    "METHODS",
    "ablated",
    "ablation_hooks",
    "generation_sample",
    "high_magnitude_units",
    "unit_means",
]

METHODS = ("zero", "mean")


def unit_means(
    model: Any,
    texts: Sequence[str],
    site: str = "resid_post",
    *,
    batch_size: int = 32,
    progress: bool = False,
) -> Float[Tensor, "layer unit"]:
    """Each unit's mean activation over ``texts`` (mean over texts of the mean over each
    text's tokens), ``[n_layers, width]``. Compute once; pass as ``means=`` to reuse."""
    if isinstance(texts, str) or not len(texts):
        raise LocalizeError("unit_means needs a non-empty list of reference texts.")
    site_obj = get_site(site, model)
    names = [site_obj.hook_name(layer) for layer in range(model.cfg.n_layers)]
    total = None
    for _, pooled in iter_pooled(
        model, texts, names, pooling="mean", batch_size=batch_size, progress=progress
    ):
        batch = torch.stack([pooled[n] for n in names], 1).double().sum(0)
        total = batch if total is None else total + batch
    assert total is not None
    return (total / len(texts)).float()


def patch_hook(index: Tensor, values: Tensor | None) -> Any:
    """A hook that sets coordinates ``index`` of the flattened activation (at every
    position) to ``values`` (broadcast against ``[batch, pos, len(index)]``) or to zero."""

    def hook(acts: Tensor, hook: Any) -> Tensor:
        flat = acts.reshape(*acts.shape[:2], -1).clone()
        if values is None:
            flat[..., index] = 0.0
        else:
            flat[..., index] = values.to(flat.dtype).to(flat.device)
        return flat.reshape(acts.shape)

    return hook


def ablation_hooks(
    units: Units,
    method: str = "zero",
    means: Float[Tensor, "layer unit"] | None = None,
) -> list[tuple[str, Any]]:
    """Hook patches that ablate ``units``: ``[(hook_name, fn), ...]``.

    >>> hooks = ablation_hooks(loc.units)                       # doctest: +SKIP
    >>> model.run_with_hooks(tokens, fwd_hooks=hooks)           # doctest: +SKIP
    """
    if method not in METHODS:
        raise LocalizeError(f"Unknown ablation method {method!r}; use one of {METHODS}.")
    if method == "mean":
        if means is None:
            raise LocalizeError(
                "method='mean' needs means=unit_means(model, texts, site) (the units' mean "
                "activations over a reference text set)."
            )
        if tuple(means.shape) != tuple(units.mask.shape):
            raise LocalizeError(
                f"means has shape {tuple(means.shape)}, the units' mask "
                f"{tuple(units.mask.shape)}; compute them at the same site and model."
            )
    site = get_site(units.site)
    hooks = []
    for layer in units.layers():
        index = units.mask[layer].nonzero().flatten()
        values = means[layer, index].detach() if method == "mean" and means is not None else None
        hooks.append((site.hook_name(layer), patch_hook(index, values)))
    return hooks


@contextlib.contextmanager
def ablated(
    model: Any,
    units: Units,
    method: str = "zero",
    means: Float[Tensor, "layer unit"] | None = None,
) -> Iterator[Any]:
    """Context manager: inside it, every forward pass of ``model`` (including
    ``model.generate``) runs with ``units`` ablated; the hooks are removed on exit."""
    units.check_model(model)
    with model.hooks(fwd_hooks=ablation_hooks(units, method, means)):
        yield model


def high_magnitude_units(
    units: Units, magnitude: Float[Tensor, "layer unit"], factor: float = 20.0
) -> pd.DataFrame:
    """The units of a set whose typical activation size is at least ``factor`` times the
    site's median: ``layer``, ``unit``, ``magnitude``, ``ratio_to_median``.

    Zeroing such a unit (a massive-activation dimension) is destructive whatever it encodes,
    so an ablation effect of a set that holds them says little about selectivity.
    """
    if tuple(magnitude.shape) != tuple(units.mask.shape):
        raise LocalizeError(
            f"magnitude has shape {tuple(magnitude.shape)}, the units {tuple(units.mask.shape)}."
        )
    median = float(magnitude.median())
    frame = units.to_frame()
    frame["magnitude"] = magnitude[units.mask].double().numpy()
    frame["ratio_to_median"] = frame["magnitude"] / median
    return frame[frame["ratio_to_median"] >= factor].reset_index(drop=True)


def generation_sample(
    model: Any,
    controls: dict[str, Units | None],
    prompt: str = "The quick brown fox jumps over the",
    *,
    max_new_tokens: int = 20,
    method: str = "zero",
    means: Float[Tensor, "layer unit"] | None = None,
) -> pd.DataFrame:
    """Greedy continuations of ``prompt`` with each unit set ablated (``None``: intact).

    The prompt is tokenized as the model's own tokenizer does by default (no BOS token is
    added for SmolLM2, whose BOS token opens a chat turn). The KV cache is off: with
    transformer-lens 4.3, cached generation through the bridge degenerates on the default
    model (repeated "-" tokens), while uncached generation matches plain transformers.

    >>> generation_sample(model, {"intact": None, "language": loc.units})  # doctest: +SKIP
    """
    ids = hf_tokenizer(model)(prompt, return_tensors="pt")["input_ids"]
    rows = []
    for name, units in controls.items():
        with contextlib.ExitStack() as stack:
            if units is not None:
                stack.enter_context(ablated(model, units, method, means))
            tokens = model.generate(
                ids,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                verbose=False,
                return_type="tokens",
                use_past_kv_cache=False,
            )
        continuation = hf_tokenizer(model).decode(tokens[0, ids.shape[1] :])
        rows.append({"set": name, "prompt": prompt, "continuation": continuation})
    return pd.DataFrame(rows)
