"""Ablation as TransformerLens hook patches.

:func:`ablation_hooks` turns a unit set into ``[(hook_name, fn), ...]`` for
``model.run_with_hooks(..., fwd_hooks=hooks)`` or ``model.hooks(fwd_hooks=hooks)``; each
function replaces the selected coordinates of its layer's activation, at every position:

- ``method="zero"`` (the reference): by zero;
- ``method="mean"``: by the unit's mean over a reference text set (:func:`unit_means`);
- ``method="resample"``: by the unit's value at the same position in a randomly drawn text
  of a reference set (:func:`resample_pool`; positions past a shorter text's end wrap
  around), seeded; one text is drawn per item and serves every ablated unit of that item,
  so the ablated units keep their joint distribution. This is the interpretability
  community's standard way to remove information without pushing activations off their
  usual range.

:func:`ablated` is the same as a context manager.

:func:`plan_controls` gives the unit sets a comparison evaluates (the selected units and
their seeded random controls): :func:`~tl_localize.compare.compare_ablation`,
:func:`~tl_localize.brain.brain_alignment` and a study's jobs all draw their controls
through it, so one seed gives one control everywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor

from .activations import iter_pooled, token_batches
from .errors import LocalizeError, check_int
from .models import hf_tokenizer, kv_cache_agrees
from .options import DEFAULT_MATCH, DEFAULT_N_RANDOM, METHODS
from .protocol import Hook, Model
from .sites import get_site
from .units import Units, check_matches

__all__ = [
    "METHODS",
    "ResamplePool",
    "UnitSet",
    "ablated",
    "ablation_hooks",
    "generation_sample",
    "high_magnitude_units",
    "patch_hook",
    "plan_controls",
    "resample_pool",
    "unit_means",
]


def _reference_texts(texts: Sequence[str], what: str) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence) or not len(texts):
        raise LocalizeError(
            f"{what} needs a non-empty list of reference texts (for example the sentences of "
            "a built-in contrast: Contrast.builtin('language').positive)."
        )
    return list(texts)


def unit_means(
    model: Model,
    texts: Sequence[str],
    *,
    site: str = "resid_post",
    batch_size: int = 32,
    progress: bool = True,
) -> Float[Tensor, "layer unit"]:
    """Each unit's mean activation over ``texts`` (mean over texts of the mean over each
    text's tokens), ``[n_layers, width]``. Compute once; pass as ``means=`` to reuse."""
    texts = _reference_texts(texts, "unit_means")
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


@dataclass
class ResamplePool:
    """Activations of a reference text set at every position, for resample ablation.

    Attributes:
        site, model_name: where the activations come from.
        lengths: tokens of each reference text.
        columns: layer -> the unit indices held for that layer (sorted).
        values: layer -> ``[n_texts, max_len, len(columns[layer])]`` activations (zero past
            a text's end).
        prepend_bos: how the reference texts were tokenized (match the evaluated texts:
            the scoring evaluations prepend BOS).
    """

    site: str
    model_name: str
    lengths: Int[Tensor, " n_texts"]
    columns: dict[int, Tensor]
    values: dict[int, Tensor]
    prepend_bos: bool | None

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def covers(self, units: Units) -> None:
        """Raise unless every unit of ``units`` is held by this pool."""
        if (units.site, units.model_name) != (self.site, self.model_name):
            raise LocalizeError(
                f"The resample pool holds {self.site!r} activations of {self.model_name!r}; "
                f"the units are at {units.site!r} of {units.model_name!r}."
            )
        for layer in units.layers():
            wanted = units.mask[layer].nonzero().flatten()
            held = self.columns.get(layer, torch.empty(0, dtype=torch.long))
            missing = wanted[~torch.isin(wanted, held)]
            if len(missing):
                raise LocalizeError(
                    f"The resample pool does not hold unit {int(missing[0])} of layer {layer}; "
                    "build it for every unit set you ablate: resample_pool(model, texts, "
                    "[selected, *controls])."
                )


def resample_pool(
    model: Model,
    texts: Sequence[str],
    units: Units | Sequence[Units],
    *,
    prepend_bos: bool | None = True,
    batch_size: int = 32,
    progress: bool = True,
) -> ResamplePool:
    """Run the reference ``texts`` once and keep, at every position, the activations of the
    units of ``units`` (one set or several: their union) for ``method="resample"``."""
    texts = _reference_texts(texts, "resample ablation")
    sets = [units] if isinstance(units, Units) else list(units)
    if not sets:
        raise LocalizeError("resample_pool needs the unit sets it will ablate.")
    for other in sets[1:]:
        sets[0]._check_compatible(other)
    union = sets[0].mask.clone()
    for other in sets[1:]:
        union |= other.mask
    sets[0].check_model(model)
    site = get_site(sets[0].site, model)
    layers = [int(x) for x in union.any(1).nonzero().flatten()]
    columns = {layer: union[layer].nonzero().flatten() for layer in layers}
    names = {site.hook_name(layer): layer for layer in layers}
    batches = token_batches(model, texts, batch_size=batch_size, prepend_bos=prepend_bos)
    max_len = max(int(b.attention_mask.shape[1]) for b in batches)
    values = {layer: torch.zeros(len(texts), max_len, len(columns[layer])) for layer in layers}
    lengths = torch.zeros(len(texts), dtype=torch.long)
    store: dict[str, Tensor] = {}

    def keep(name: str) -> Any:
        def hook(acts: Tensor, hook: Any) -> None:
            store[name] = acts.detach().reshape(*acts.shape[:2], -1).float().cpu()

        return hook

    for batch in batches:
        store.clear()
        with torch.no_grad():
            model.run_with_hooks(
                batch.input_ids,
                attention_mask=batch.attention_mask,
                fwd_hooks=[(name, keep(name)) for name in names],
            )
        width = batch.input_ids.shape[1]
        lengths[batch.index] = batch.attention_mask.sum(1)
        for name, layer in names.items():
            values[layer][batch.index, :width] = store[name][..., columns[layer]]
    return ResamplePool(sets[0].site, sets[0].model_name, lengths, columns, values, prepend_bos)


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


class _Draws:
    """One reference text per item, drawn once per forward pass (at the first ablated
    layer) and shared by every layer's hook in that pass; seeded."""

    def __init__(self, n_texts: int, seed: int, first_layer: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.n_texts = n_texts
        self.first_layer = first_layer
        self.current = torch.zeros(0, dtype=torch.long)

    def for_layer(self, layer: int, batch: int) -> Tensor:
        if layer == self.first_layer or len(self.current) != batch:
            self.current = torch.randint(self.n_texts, (batch,), generator=self.generator)
        return self.current


def _resample_hook(pool: ResamplePool, layer: int, index: Tensor, draws: _Draws) -> Any:
    column = torch.searchsorted(pool.columns[layer], index)
    values = pool.values[layer][:, :, column]  # [n_texts, max_len, len(index)]

    def hook(acts: Tensor, hook: Any) -> Tensor:
        flat = acts.reshape(*acts.shape[:2], -1).clone()
        batch, pos = flat.shape[:2]
        drawn = draws.for_layer(layer, batch)  # [batch]
        positions = torch.arange(pos).unsqueeze(0) % pool.lengths[drawn].unsqueeze(1)
        picked = values[drawn.unsqueeze(1), positions]  # [batch, pos, len(index)]
        flat[..., index] = picked.to(flat.dtype).to(flat.device)
        return flat.reshape(acts.shape)

    return hook


def ablation_hooks(
    units: Units,
    *,
    method: str = "zero",
    means: Float[Tensor, "layer unit"] | None = None,
    pool: ResamplePool | None = None,
    seed: int = 0,
) -> list[Hook]:
    """Hook patches that ablate ``units``: ``[(hook_name, fn), ...]``.

    ``method="mean"`` needs ``means=`` (:func:`unit_means`); ``method="resample"`` needs
    ``pool=`` (:func:`resample_pool`) and draws its reference texts with ``seed``.

    >>> hooks = ablation_hooks(loc.units)
    >>> logits = model.run_with_hooks("the cat sat", fwd_hooks=hooks)
    """
    if method not in METHODS:
        raise LocalizeError(f"Unknown ablation method {method!r}; use one of {METHODS}.")
    if method == "mean":
        if means is None:
            raise LocalizeError(
                "method='mean' needs means=unit_means(model, texts, site=...) (the units' mean "
                "activations over a reference text set)."
            )
        if tuple(means.shape) != tuple(units.mask.shape):
            raise LocalizeError(
                f"means has shape {tuple(means.shape)}, the units' mask "
                f"{tuple(units.mask.shape)}; compute them at the same site and model."
            )
    if method == "resample":
        if pool is None:
            raise LocalizeError(
                "method='resample' needs a reference set: pool=resample_pool(model, texts, "
                "units) (texts to draw replacement activations from)."
            )
        pool.covers(units)
    site = get_site(units.site)
    layers = units.layers()
    draws = _Draws(len(pool), seed, layers[0]) if pool is not None and layers else None
    hooks = []
    for layer in layers:
        index = units.mask[layer].nonzero().flatten()
        if method == "resample":
            assert pool is not None and draws is not None
            fn = _resample_hook(pool, layer, index, draws)
        else:
            values = (
                means[layer, index].detach() if method == "mean" and means is not None else None
            )
            fn = patch_hook(index, values)
        hooks.append((site.hook_name(layer), fn))
    return hooks


@contextlib.contextmanager
def ablated(
    model: Model,
    units: Units,
    *,
    method: str = "zero",
    means: Float[Tensor, "layer unit"] | None = None,
    pool: ResamplePool | None = None,
    seed: int = 0,
) -> Iterator[Model]:
    """Context manager: inside it, every forward pass of ``model`` (including
    ``model.generate``) runs with ``units`` ablated; the hooks are removed on exit.

    >>> with ablated(model, loc.units):
    ...     logits = model("the cat sat")
    """
    units.check_model(model)
    hooks = ablation_hooks(units, method=method, means=means, pool=pool, seed=seed)
    with model.hooks(fwd_hooks=hooks):
        yield model


@dataclass(frozen=True)
class UnitSet:
    """One unit set of a comparison: the selected units (``set="selected"``) or one random
    control (``set="random"``, with its ``match`` and ``seed``), at ``fraction`` of the site
    (the key it was planned under)."""

    set: str
    units: Units
    fraction: float
    match: str | None = None
    seed: int | None = None


def plan_controls(
    selected: Units | Mapping[float, Units],
    *,
    match: str | Sequence[str] = DEFAULT_MATCH,
    n_random: int = DEFAULT_N_RANDOM,
    magnitude: Float[Tensor, "layer unit"] | None = None,
    seeds: Sequence[int] | None = None,
) -> list[UnitSet]:
    """The unit sets a comparison evaluates, in the order it evaluates them.

    For each selected set (``selected``: one :class:`Units`, or a mapping fraction ->
    :class:`Units` when several fractions are compared): the set itself, then for each
    control kind of ``match`` one control per seed, drawn by :meth:`Units.random_like`
    (``seed``, ``match``, ``magnitude``). The seeds are ``range(n_random)`` unless ``seeds``
    names them (a brain alignment offsets them by its seed; a study job asks for one).

    >>> sets = plan_controls(loc.units, match=["uniform", "layer"], n_random=2)
    >>> [(s.set, s.match, s.seed) for s in sets]  # doctest: +NORMALIZE_WHITESPACE
    [('selected', None, None), ('random', 'uniform', 0), ('random', 'uniform', 1),
     ('random', 'layer', 0), ('random', 'layer', 1)]
    """
    matches = check_matches(match)
    if seeds is None:
        seeds = range(check_int("n_random", n_random, 0))
    if isinstance(selected, Units):
        selected = {len(selected) / selected.n_units: selected}
    sets: list[UnitSet] = []
    for fraction, units in selected.items():
        sets.append(UnitSet("selected", units, float(fraction)))
        for kind in matches:
            for seed in seeds:
                control = units.random_like(seed, kind, magnitude)
                sets.append(UnitSet("random", control, float(fraction), kind, seed))
    return sets


def high_magnitude_units(
    units: Units, magnitude: Float[Tensor, "layer unit"], factor: float | int = 20.0
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
    if isinstance(factor, bool) or not factor > 0:  # also refuses NaN
        raise LocalizeError(f"factor={factor!r}: a ratio to the median must be above 0 (e.g. 20).")
    median = float(magnitude.median())
    frame = units.to_frame()
    frame["magnitude"] = magnitude[units.mask].double().numpy()
    frame["ratio_to_median"] = frame["magnitude"] / median
    return frame[frame["ratio_to_median"] >= factor].reset_index(drop=True)


def generation_sample(
    model: Model,
    controls: dict[str, Units | None],
    *,
    prompt: str = "The quick brown fox jumps over the",
    max_new_tokens: int = 20,
    method: str = "zero",
    means: Float[Tensor, "layer unit"] | None = None,
    pool: ResamplePool | None = None,
) -> pd.DataFrame:
    """Greedy continuations of ``prompt`` with each unit set ablated (``None``: intact).

    The prompt is tokenized as the model's own tokenizer does by default (no BOS token is
    added for SmolLM2, whose BOS token opens a chat turn). Generation uses the KV cache
    where it gives the model's uncached logits (:func:`tl_localize.models.kv_cache_agrees`,
    measured once per model); a resample ablation runs without it, as it draws its
    replacement values per forward pass and position and so needs every position in each.

    >>> generation_sample(model, {"intact": None, "toy": loc.units}, max_new_tokens=3).shape
    (2, 3)
    """
    check_int("max_new_tokens", max_new_tokens, 1)
    odd = [k for k, v in controls.items() if v is not None and not isinstance(v, Units)]
    if odd:
        raise LocalizeError(
            f"controls[{odd[0]!r}] is a {type(controls[odd[0]]).__name__}; each control is "
            "Units (ablated) or None (intact)."
        )
    ids = hf_tokenizer(model)(prompt, return_tensors="pt")["input_ids"]
    cached = method != "resample" and kv_cache_agrees(model)
    rows = []
    for name, units in controls.items():
        with contextlib.ExitStack() as stack:
            if units is not None:
                stack.enter_context(ablated(model, units, method=method, means=means, pool=pool))
            tokens = model.generate(
                ids,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                verbose=False,
                return_type="tokens",
                use_past_kv_cache=cached,
            )
        continuation = hf_tokenizer(model).decode(tokens[0, ids.shape[1] :])
        rows.append({"set": name, "prompt": prompt, "continuation": continuation})
    return pd.DataFrame(rows)
