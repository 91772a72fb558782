"""Attribution per unit: how much a task's metric depends on each unit, from gradients.

The task is a set of minimal pairs: the grammatical sentence is the *clean* input, the
ungrammatical one the *corrupted* input. Each pair's metric is the score the evaluations
use, ``s = log P(good) - log P(bad)``, each sentence on its own forward pass with a BOS
token prepended. For every unit at a site, three estimates are summed over positions and
then averaged over pairs (``_mean``) and over their absolute values (``_abs``):

``patch``
    attribution patching: ``(a_corrupted - a_clean) . ds/da`` at the clean run, the
    first-order estimate of the change in ``s`` when the unit, in the grammatical
    sentence's run, takes at each position the value it has in the ungrammatical
    sentence's run. Position-wise patching needs both sentences to have the same number of
    tokens.
``zero``
    ``(0 - a) . ds/da`` over both runs: the first-order estimate of zeroing the unit in
    both sentences, the ablation of the reference recipe.
``dla``
    direct logit attribution: the unit's contribution along the direct path to the
    unembedding to the logit difference between the grammatical and the ungrammatical
    token at the first position where the pair differs (a shared prefix, so one run
    suffices), with the final normalization's scale frozen at its clean-run value. It is
    defined for what writes into the residual stream (``mlp_out``, ``attn_out``; neurons
    and head values through their output projections, ``mlp_post`` and ``attn_z``) and for
    ``resid_post`` at the last layer only, which is the unembedding's input; earlier
    ``resid_post`` layers are NaN: their value reaches the logits through later blocks.

Negative ``patch`` and ``zero`` values mean the unit supports the grammatical preference.
:func:`check_attribution` compares the linear estimates with real patching.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from scipy import stats as sps
from torch import Tensor
from tqdm.auto import tqdm

from .ablation import patch_hook
from .activations import pad_batches, tokenize
from .config import AttributionConfig
from .data.io import read_csv
from .data.pairs import minimal_pairs_frame
from .errors import LocalizeError, check_int
from .localize import select_top
from .models import hf_tokenizer, model_fingerprint, model_signature
from .protocol import Model, weight
from .results import (
    atomic_folder,
    base_record,
    check_kind,
    check_same_model,
    now,
    read_record,
    read_result_record,
    versions,
    write_record,
)
from .scoring import next_token_logprobs
from .sites import SITES, Site, get_site
from .tasks import Task, get_task
from .units import Units, unit_table

__all__ = [
    "KINDS",
    "Attribution",
    "AttributionCheck",
    "aligned_pairs",
    "check_attribution",
    "plot_check",
    "task_pairs",
    "unit_attribution",
]

KINDS = ("patch", "zero", "dla")
SCORES = tuple(f"{kind}_{agg}" for kind in KINDS for agg in ("mean", "abs"))
FORMAT = "tl_localize.attribution/1"


def task_pairs(task: Any, **options: Any) -> tuple[str, pd.DataFrame]:
    """The minimal pairs of an attribution task: a registered task made of minimal pairs
    (``builtin``, ``blimp`` with ``blimp=folder``), or minimal pairs given directly."""
    if isinstance(task, str | Task):
        prepared = get_task(task).prepare(**options)
        return prepared.name, prepared.pairs()
    return "pairs", minimal_pairs_frame(task)


def aligned_pairs(model: Model, pairs: Any, unaligned: str = "error") -> tuple[pd.DataFrame, int]:
    """Minimal pairs with their token ids (BOS prepended) and the first differing position,
    and how many pairs were left out.

    Position-wise patching needs the two sentences of a pair to have the same number of
    tokens. ``unaligned="error"`` raises on the first pair that does not, naming it;
    ``"drop"`` leaves such pairs out (and counts them). Pairs whose sentences tokenize
    identically are always an error.
    """
    if unaligned not in ("error", "drop"):
        raise LocalizeError(f"unaligned must be 'error' or 'drop', got {unaligned!r}.")
    frame = minimal_pairs_frame(pairs)
    if hf_tokenizer(model).bos_token_id is None:
        raise LocalizeError(
            "The tokenizer has no BOS token, so the first token of a sentence cannot be scored. "
            "Set tokenizer.bos_token (for example to the EOS token) before attribution."
        )

    good = tokenize(model, list(frame["sentence_good"]), prepend_bos=True)
    bad = tokenize(model, list(frame["sentence_bad"]), prepend_bos=True)
    keep, first = [], []
    for i, (g, b) in enumerate(zip(good, bad, strict=True)):
        if len(g) != len(b):
            if unaligned == "drop":
                continue
            raise LocalizeError(
                f"Pair {i} does not align: {frame['sentence_good'][i]!r} is {len(g) - 1} "
                f"tokens and {frame['sentence_bad'][i]!r} is {len(b) - 1}. Patching replaces "
                "activations position by position, so both sentences need the same number "
                "of tokens: reword the pair, remove it, or pass unaligned='drop' to leave "
                "out such pairs."
            )
        diff = [t for t, (x, y) in enumerate(zip(g, b, strict=True)) if x != y]
        if not diff:
            raise LocalizeError(
                f"Pair {i}: both sentences tokenize to the same tokens "
                f"({frame['sentence_good'][i]!r}); there is nothing to contrast."
            )
        keep.append(i)
        first.append(diff[0])
    out = frame.iloc[keep].reset_index(drop=True)
    if out.empty:
        raise LocalizeError("No pair has sentences of the same token length; nothing to patch.")
    out["ids_good"] = [good[i] for i in keep]
    out["ids_bad"] = [bad[i] for i in keep]
    out["first_diff"] = first
    return out, len(frame) - len(out)


def pair_batches(
    pairs: pd.DataFrame, batch_size: int, pad: int
) -> list[tuple[np.ndarray, Tensor, Tensor, Tensor]]:
    """``(rows, good_ids, bad_ids, mask)`` batches of :func:`aligned_pairs`: both sentences
    of a pair have the same length, so they sort, pad and mask alike."""
    good = pad_batches(list(pairs["ids_good"]), batch_size=batch_size, pad=pad)
    bad = pad_batches(list(pairs["ids_bad"]), batch_size=batch_size, pad=pad)
    return [
        (g.index.numpy(), g.input_ids, b.input_ids, g.attention_mask)
        for g, b in zip(good, bad, strict=True)
    ]


def sequence_logprob(
    logits: Float[Tensor, "batch pos vocab"],
    ids: Int[Tensor, "batch pos"],
    mask: Int[Tensor, "batch pos"],
) -> Float[Tensor, " batch"]:
    """Summed log-probability of each row's tokens after the first (padding masked)."""
    return (next_token_logprobs(logits, ids) * mask[:, 1:]).sum(1)


def _forward(
    model: Model, ids: Tensor, mask: Tensor, names: Sequence[str], extra: Sequence[str] = ()
) -> tuple[Tensor, list[Tensor], dict[str, Tensor]]:
    """Forward pass with gradients kept, returning logits and the activations at ``names``
    (in the graph) and at ``extra`` (detached)."""
    store: dict[int, Tensor] = {}
    side: dict[str, Tensor] = {}

    def saver(i: int) -> Any:
        def hook(acts: Tensor, hook: Any) -> Tensor:
            store[i] = acts
            return acts

        return hook

    def keep(name: str) -> Any:
        def hook(acts: Tensor, hook: Any) -> Tensor:
            side[name] = acts.detach()
            return acts

        return hook

    hooks = [(n, saver(i)) for i, n in enumerate(names)] + [(n, keep(n)) for n in extra]
    logits = model.run_with_hooks(ids, attention_mask=mask, fwd_hooks=hooks)
    return logits, [store[i] for i in range(len(names))], side


def _dla_directions(model: Model, site_name: str, gvec: Tensor) -> Tensor:
    """``[layer, batch, width]``: each unit's direct-path weight on the logit difference."""
    n_layers = int(model.cfg.n_layers)
    if site_name in ("resid_post", "mlp_out", "attn_out"):
        out = gvec.unsqueeze(0).expand(n_layers, *gvec.shape).clone()
        if site_name == "resid_post":
            out[:-1] = torch.nan
        return out
    if site_name == "mlp_post":
        return torch.einsum("lnd,bd->lbn", weight(model, "W_out").detach().float(), gvec)
    if site_name == "attn_z":
        w_o = weight(model, "W_O").detach().float()
        return torch.einsum("lhed,bd->lbhe", w_o, gvec).flatten(2)
    raise LocalizeError(f"No direct logit attribution is defined for site {site_name!r}.")


class Attribution:
    """Per-unit attribution scores for a task (see the module docstring).

    Attributes:
        scores: ``[n_layers, width]`` tensors ``patch_mean``, ``patch_abs``, ``zero_mean``,
            ``zero_abs``, ``dla_mean``, ``dla_abs``.
        items: one row per pair: the pair, ``logprob_good``, ``logprob_bad``, ``score``,
            ``logit_diff`` (at the first differing position), ``first_diff``.
        site: the unit site; model_name: the model's name; record: how it was made.
    """

    def __init__(
        self,
        scores: dict[str, Tensor],
        items: pd.DataFrame,
        site: str,
        model_name: str,
        record: dict[str, Any],
    ) -> None:
        self.scores = scores
        self.items = items
        self.site = site
        self.model_name = model_name
        self.record = record

    @property
    def task(self) -> str:
        return str(self.record.get("task"))

    @property
    def fingerprint(self) -> str | None:
        signature = self.record.get("model")
        return signature.get("fingerprint") if isinstance(signature, dict) else None

    def __repr__(self) -> str:
        shape = tuple(self.scores["patch_mean"].shape)
        return (
            f"Attribution({self.task!r} on {self.model_name!r} at {self.site!r}: "
            f"{len(self.items)} pairs, {shape[0]} layers x {shape[1]} units)"
        )

    def _repr_html_(self) -> str:
        """The card: task and pairs, model, site, the units with the largest patch_abs,
        where it was computed, patch_abs per layer and the summary."""
        from .cards import card, computed_on, layers_figure

        scores = self.scores["patch_abs"]
        per_layer = scores.sum(1).double().numpy()
        flat = self.to_frame().nlargest(5, "patch_abs")
        top = ", ".join(f"L{r.layer}.{r.unit}" for r in flat.itertuples())
        facts = {
            "task": f"{self.task} ({len(self.items)} pairs)",
            "model": self.model_name,
            "site": self.site,
            "units": f"{scores.numel():,} ({scores.shape[0]} layers x {scores.shape[1]})",
            "top by patch_abs": top,
            "computed": computed_on(self.record.get("model")),
        }
        return card("Attribution", facts, layers_figure(per_layer, "patch_abs"), self.summary())

    def summary(self) -> str:
        """The finding in words: the pairs, the intact model's mean score, the unit with the
        largest attribution-patching estimate, the mean estimate and where half of the total
        sits."""
        from .cards import busiest_layers, layer_ranges

        frame = self.to_frame()
        best = frame.loc[frame["patch_abs"].idxmax()]
        per_layer = self.scores["patch_abs"].sum(1).double().numpy()
        score = float(self.items["score"].mean())
        return (
            f"Over {len(self.items)} {self.task} pairs, {self.model_name} prefers the good "
            f"sentence by {score:.2f} nats on average. Patching one {self.site} unit moves that "
            f"difference by {frame['patch_abs'].mean():.3g} on average (attribution-patching "
            f"estimate, |effect|); the largest, {best['patch_abs']:.3g}, is unit "
            f"L{int(best['layer'])}.{int(best['unit'])}, and half of the total sits in layers "
            f"{layer_ranges(busiest_layers(per_layer))}."
        )

    def plot(self) -> Any:
        """patch_abs summed per layer (bars) and each unit's patch_abs against its zero_abs."""
        import matplotlib.pyplot as plt
        import seaborn as sns

        frame = self.to_frame()
        per_layer = frame.groupby("layer", as_index=False)["patch_abs"].sum()
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
        sns.barplot(data=per_layer, x="layer", y="patch_abs", color="tab:blue", ax=left)
        left.set_ylabel("patch_abs, summed over units")
        sns.scatterplot(data=frame, x="zero_abs", y="patch_abs", hue="layer", s=8, ax=right)
        right.set_title(f"{self.task}, {self.model_name}", fontsize=9)
        plt.close(fig)
        return fig

    def config(self) -> dict[str, Any]:
        """How the scores were computed (saved as the record's ``config``)."""
        keys = ("task", "site", "n_pairs", "n_items", "seed", "batch_size")
        return {k: self.record.get(k) for k in keys}

    def to_frame(self) -> pd.DataFrame:
        """One row per unit: ``model``, ``task``, ``site``, ``layer``, ``unit`` and the six
        scores."""
        frame = unit_table({name: self.scores[name].double() for name in SCORES})
        for i, (key, value) in enumerate(
            {"model": self.model_name, "task": self.task, "site": self.site}.items()
        ):
            frame.insert(i, key, value)
        return frame

    def top(self, top: float | int | str, score: str = "patch_abs") -> Units:
        """The units with the highest ``score`` (a fraction or a count, over all layers)."""
        if score not in self.scores:
            raise LocalizeError(f"Unknown score {score!r}; scores: {list(self.scores)}.")
        values = self.scores[score]
        if score.endswith("_mean"):
            values = values.abs()
        return Units(
            select_top(values, top), self.site, self.model_name, fingerprint=self.fingerprint
        )

    def save(self, folder: str | Path, *, force: bool = False) -> Path:
        """Write ``attribution.safetensors`` (scores), ``attribution.csv`` (one row per unit),
        ``items.csv`` and ``record.json`` to ``folder``, atomically."""
        with atomic_folder(folder, force=force) as tmp:
            self.write(tmp)
        return Path(folder)

    def write(self, folder: Path) -> None:
        """Write :meth:`save`'s files into an existing folder."""
        meta = {"format": FORMAT, "site": self.site, "model": self.model_name}
        tensors = {k: v.contiguous() for k, v in self.scores.items()}
        save_file(tensors, str(folder / "attribution.safetensors"), metadata=meta)
        self.to_frame().to_csv(folder / "attribution.csv", index=False)
        items = self.items.drop(columns=["ids_good", "ids_bad"], errors="ignore")
        items.to_csv(folder / "items.csv", index=False)
        write_record(folder, base_record(self.record, self.config(), self.summary()), KIND)

    @classmethod
    def load(cls, folder: str | Path, model: Model | None = None) -> Attribution:
        """Read a folder written by :meth:`save`; with ``model``, refuse one computed for
        another model. The files are checked against each other, as
        :meth:`Localization.load` checks its own: the record must be an attribution's and
        name the scores' model and site, the six scores must be floating-point tensors of
        one shape ``[n_layers, width]`` that the record's model signature gives at that
        site, and ``items.csv`` must hold the record's pairs."""
        folder = Path(folder)
        if (folder / "record.json").is_file():  # another kind's folder: name its loader
            check_kind(folder, read_record(folder), KIND, required=False)
        path = folder / "attribution.safetensors"
        if not path.is_file():
            raise LocalizeError(f"{folder} holds no attribution.safetensors: not an attribution.")
        record = read_record(folder, "a saved attribution (tl-localize unit-attribution --out ...)")
        _check_attribution_record(folder, record)
        try:
            with safe_open(str(path), "pt") as handle:
                meta = handle.metadata() or {}
            scores = load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:
            raise LocalizeError(f"{path} is damaged ({error}).") from None
        if meta.get("format") != FORMAT or not {"site", "model"} <= set(meta):
            raise LocalizeError(f"{path} is not a tl_localize attribution file.")
        signature = record["model"]
        if (meta["model"], meta["site"]) != (signature["model"], record["site"]):
            raise LocalizeError(
                f"{folder}: attribution.safetensors belongs to model {meta['model']!r} at site "
                f"{meta['site']!r}, but record.json names {signature['model']!r} at "
                f"{record['site']!r}; the folder mixes files of two results. Compute the "
                "attribution again."
            )
        shapes = {tuple(v.shape) for v in scores.values()}
        if set(SCORES) - set(scores) or len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise LocalizeError(f"{path} lacks scores or mixes shapes; the file is damaged.")
        found = next(iter(shapes))
        not_float = [k for k, v in scores.items() if not v.is_floating_point()]
        if not_float or 0 in found:
            raise LocalizeError(
                f"{path}: the scores are {scores[not_float[0]].dtype if not_float else found}, "
                "not floating-point [n_layers, width]; the file is damaged."
            )
        expected = _signature_shape(signature, meta["site"])
        if expected is not None and found != expected:
            raise LocalizeError(
                f"{path}: the scores have shape {found}, but record.json's model "
                f"{signature['model']!r} has {expected} units at {meta['site']!r}; the folder "
                "mixes files of two results or is damaged."
            )
        if model is not None:
            expected = (int(model.cfg.n_layers), get_site(meta["site"], model).n_units(model))
            fingerprint = signature.get("fingerprint")
            if (
                meta["model"] != model.cfg.model_name
                or found != expected
                or (fingerprint is not None and fingerprint != model_fingerprint(model))
            ):
                raise LocalizeError(
                    f"{folder} was computed for model {meta['model']!r}, not "
                    f"{model.cfg.model_name!r} (shapes {found} and {expected}, weights "
                    f"{fingerprint} and {model_fingerprint(model)}); recompute it for this model."
                )
        items = read_csv(folder / "items.csv", "table of attribution items")
        lacking = [c for c in ("sentence_good", "sentence_bad", "score") if c not in items]
        if lacking or len(items) != record["n_pairs"]:
            raise LocalizeError(
                f"{folder / 'items.csv'}: "
                + (f"no column {lacking[0]!r}" if lacking else f"{len(items)} rows")
                + f", but the attribution was computed on {record['n_pairs']} pairs with "
                "their scores; the folder is damaged. Compute the attribution again."
            )
        return cls(scores, items, meta["site"], meta["model"], record)


KIND = "attribution"  # the kind its record.json carries


def _check_attribution_record(folder: Path, record: dict[str, Any]) -> None:
    """The record of a saved attribution: marked as one (when marked at all), with the
    task, the site, the number of pairs and the model's signature."""
    path = folder / "record.json"
    check_kind(folder, record, KIND, required=False)  # unmarked: written by older releases
    signature = record.get("model")
    n_pairs = record.get("n_pairs")
    problem = next(
        (
            text
            for bad, text in (
                (not isinstance(record.get("task"), str), "no 'task'"),
                (record.get("site") not in SITES, f"its 'site' is {record.get('site')!r}"),
                (
                    isinstance(n_pairs, bool) or not isinstance(n_pairs, int) or n_pairs < 1,
                    f"its 'n_pairs' is {n_pairs!r}",
                ),
                (
                    not isinstance(signature, dict) or not isinstance(signature.get("model"), str),
                    "no model signature ('model')",
                ),
            )
            if bad
        ),
        None,
    )
    if problem:
        raise LocalizeError(
            f"{path} is not the record of an attribution ({problem}); compute the attribution "
            "again to write a complete folder."
        )


def _signature_shape(signature: dict[str, Any], site: str) -> tuple[int, int] | None:
    """``(n_layers, width)`` of ``site`` in a model signature, None where it lacks a size."""
    if site not in SITES:
        return None
    width = 1
    for key in ("n_layers", *SITES[site].width):
        value = signature.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return None
        width *= value if key != "n_layers" else 1
    return int(signature["n_layers"]), width


def _prepare_pairs(
    model: Model,
    task: Any,
    *,
    n_items: int | None,
    unaligned: str | None,
    blimp: str | Path | None,
    batch_size: int,
    seed: int,
) -> tuple[str, pd.DataFrame, int]:
    """The task's aligned pairs (sampled to ``n_items``), its name, and the number left out."""
    for name, value, low in (("batch_size", batch_size, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise LocalizeError(f"{name} must be an integer of at least {low}, got {value!r}.")
    if n_items is not None and (
        isinstance(n_items, bool) or not isinstance(n_items, int) or n_items < 1
    ):
        raise LocalizeError(f"n_items must be a whole number of at least 1, got {n_items!r}.")
    name, frame = task_pairs(task, blimp=blimp)
    if unaligned is None:  # registered suites hold pairs of any length; a user's must align
        unaligned = "error" if name == "pairs" else "drop"
    pairs, n_dropped = aligned_pairs(model, frame, unaligned)
    if n_items is not None and n_items < len(pairs):
        pairs = pairs.sample(n=n_items, random_state=seed).reset_index(drop=True)
    return name, pairs, n_dropped


def unit_attribution(
    model: Model,
    site: str | Site = "resid_post",
    task: Any = "builtin",
    *,
    n_items: int | None = None,
    unaligned: str | None = None,
    blimp: str | Path | None = None,
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = True,
) -> Attribution:
    """Attribution of a minimal-pair task to every unit at ``site``.

    Args:
        site: unit site (as for :func:`localize`).
        task: a registered task made of minimal pairs (``"builtin"``, the toolkit's own;
            ``"blimp"``, with ``blimp=folder``; see :func:`tl_localize.tasks.attributable`),
            or minimal pairs (a DataFrame or list with ``sentence_good`` and
            ``sentence_bad``).
        n_items: use a random sample of this many pairs (``seed``); default all.
        unaligned: ``"error"`` or ``"drop"`` for pairs whose sentences tokenize to different
            lengths; default ``"drop"`` for a registered task, ``"error"`` for pairs given
            directly.

    Returns:
        An :class:`Attribution`; ``to_frame()`` gives one row per unit.

    >>> att = unit_attribution(model, "resid_post", toy_pairs, progress=False)
    >>> att.to_frame().shape  # 3 layers x 32 units; model, task, site, layer, unit, 6 scores
    (96, 11)
    """
    AttributionConfig(n_items=n_items, unaligned=unaligned, batch_size=batch_size, seed=seed)
    site_obj = get_site(site, model)
    name, pairs, n_dropped = _prepare_pairs(
        model, task, n_items=n_items, unaligned=unaligned, blimp=blimp, batch_size=batch_size,
        seed=seed,
    )  # fmt: skip
    tokenizer = hf_tokenizer(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    n_layers = int(model.cfg.n_layers)
    width = site_obj.n_units(model)
    names = [site_obj.hook_name(layer) for layer in range(n_layers)]
    center = str(model.cfg.normalization_type or "").upper().startswith("LN")
    gamma = _final_norm_weight(model)
    w_u = weight(model, "W_U").detach().float()

    sums = {k: torch.zeros(n_layers, width, dtype=torch.float64) for k in SCORES}
    per_item = {k: np.zeros(len(pairs)) for k in ("logprob_good", "logprob_bad", "logit_diff")}
    start = time.perf_counter()
    batches = pair_batches(pairs, batch_size, pad)
    for rows, good, bad, mask in tqdm(
        batches, desc=f"attribution at {site_obj.name}", disable=not progress, leave=False
    ):
        with torch.enable_grad():
            logits_g, acts_g, side = _forward(model, good, mask, names, ["ln_final.hook_scale"])
            lp_g = sequence_logprob(logits_g, good, mask)
            grads_g = torch.autograd.grad(lp_g.sum(), acts_g)
            logits_b, acts_b, _ = _forward(model, bad, mask, names)
            lp_b = sequence_logprob(logits_b, bad, mask)
            grads_b = torch.autograd.grad(lp_b.sum(), acts_b)
        first = torch.as_tensor(pairs["first_diff"].to_numpy()[rows])
        pos = first - 1  # the position that predicts the first differing token
        r = torch.arange(len(rows))
        tok_g, tok_b = good[r, first], bad[r, first]
        with torch.no_grad():
            per_item["logprob_good"][rows] = lp_g.detach().double().numpy()
            per_item["logprob_bad"][rows] = lp_b.detach().double().numpy()
            per_item["logit_diff"][rows] = (
                (logits_g[r, pos, tok_g] - logits_g[r, pos, tok_b]).double().numpy()
            )
            direction = (w_u[:, tok_g] - w_u[:, tok_b]).T * gamma
            if center:
                direction = direction - direction.mean(-1, keepdim=True)
            scale = side["ln_final.hook_scale"][r, pos].reshape(len(rows), 1).float()
            dla_dirs = _dla_directions(model, site_obj.name, direction / scale)
            weights = mask.unsqueeze(-1).float()
            for layer in range(n_layers):
                a_g = acts_g[layer].detach().flatten(2).float()
                a_b = acts_b[layer].detach().flatten(2).float()
                g_g = grads_g[layer].flatten(2).float()
                g_b = grads_b[layer].flatten(2).float()
                estimates = {
                    "patch": ((a_b - a_g) * g_g * weights).sum(1),
                    "zero": ((a_b * g_b - a_g * g_g) * weights).sum(1),
                    "dla": a_g[r, pos] * dla_dirs[layer],
                }
                for kind, value in estimates.items():
                    value = value.double()
                    sums[f"{kind}_mean"][layer] += value.sum(0)
                    sums[f"{kind}_abs"][layer] += value.abs().sum(0)
    seconds = time.perf_counter() - start
    scores = {k: (v / len(pairs)).float() for k, v in sums.items()}
    items = pairs.assign(**per_item)
    items["score"] = items["logprob_good"] - items["logprob_bad"]
    record = {
        "created": now(),
        "task": name,
        "site": site_obj.name,
        "n_pairs": len(pairs),
        "n_dropped_unaligned": n_dropped,
        "n_items": n_items,
        "seed": seed,
        "batch_size": batch_size,
        "model": model_signature(model),
        "versions": versions(),
        "timings": {"attribution_s": seconds},
    }
    return Attribution(scores, items, site_obj.name, str(model.cfg.model_name), record)


def _final_norm_weight(model: Model) -> Tensor:
    params = dict(weight(model, "ln_final").named_parameters())
    gamma = next((v for k, v in params.items() if k.endswith("weight")), None)
    if gamma is None:
        return torch.ones(int(model.cfg.d_model))
    return gamma.detach().float()


def _patched_logprobs(
    model: Model,
    ids: Tensor,
    mask: Tensor,
    hook_name: str,
    unit: int,
    values: Tensor | None,
) -> Tensor:
    """Sequence log-probabilities with one unit set to ``values`` (per position) or zeroed."""
    index = torch.tensor([unit])
    hook = patch_hook(index, None if values is None else values.unsqueeze(-1))
    with torch.inference_mode():
        logits = model.run_with_hooks(ids, attention_mask=mask, fwd_hooks=[(hook_name, hook)])
        return sequence_logprob(logits, ids, mask).double()


@dataclass
class AttributionCheck:
    """Attribution estimates against real patching (:func:`check_attribution`).

    Attributes:
        frame: one row per sampled unit: ``layer``, ``unit``, ``sampled`` (``top`` /
            ``random``), ``estimate``, ``actual``.
        kind: ``patch`` or ``zero``.
        n_pairs: pairs the effects are averaged over.
        pearson, spearman: the correlations of estimate and actual over the sample.
        record: how it was made: the model's signature (``model``), the site and task.
    """

    frame: pd.DataFrame
    kind: str
    n_pairs: int
    pearson: float
    spearman: float
    record: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    def to_frame(self) -> pd.DataFrame:
        """The per-unit table with the check's settings as columns (stacks across checks)."""
        return self.frame.assign(kind=self.kind, n_pairs=self.n_pairs)

    def summary(self) -> str:
        return (
            f"On {len(self)} units and {self.n_pairs} pairs, the {self.kind} estimate agrees "
            f"with real patching at Pearson r {self.pearson:.2f} and Spearman rho "
            f"{self.spearman:.2f}."
        )

    def plot(self) -> Any:
        """Estimate against real patching, one point per sampled unit (:func:`plot_check`)."""
        return plot_check(self)

    def _repr_html_(self) -> str:
        """The card: the estimate's kind, the sample, the two correlations, the figure's
        points and the summary."""
        from .cards import card, frame_html

        facts = {
            "estimate": self.kind,
            "sample": f"{len(self)} units ({', '.join(dict.fromkeys(self.frame['sampled']))}), "
            f"{self.n_pairs} pairs",
            "Pearson r": f"{self.pearson:.3f}",
            "Spearman rho": f"{self.spearman:.3f}",
            "site": self.record.get("site"),
        }
        return card("Attribution check", facts, frame_html(self.frame.head(10)), self.summary())

    def save(self, folder: str | Path, *, force: bool = False) -> Path:
        """Write ``check.csv``, ``check.png`` and ``record.json`` (kind ``attribution
        check``) to ``folder``, atomically."""
        import matplotlib.pyplot as plt

        config = {"kind": self.kind, "n_pairs": self.n_pairs}
        record = {**self.record, "pearson": self.pearson, "spearman": self.spearman}
        with atomic_folder(folder, force=force) as tmp:
            self.frame.to_csv(tmp / "check.csv", index=False)
            fig = self.plot()
            fig.savefig(tmp / "check.png", dpi=120, bbox_inches="tight")
            plt.close(fig)
            write_record(tmp, base_record(record, config, self.summary()), CHECK_KIND)
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path, model: Model | None = None) -> AttributionCheck:
        """Read a folder written by :meth:`save`; with ``model``, refuse one made for
        another model."""
        folder = Path(folder)
        what = "a saved attribution check"
        record, config = read_result_record(folder, CHECK_KIND, what, ("kind", "n_pairs"))
        frame = read_csv(folder / "check.csv", "table of an attribution check")
        missing = [c for c in ("layer", "unit", "sampled", "estimate", "actual") if c not in frame]
        if missing:
            raise LocalizeError(
                f"{folder / 'check.csv'} lacks the column {missing[0]!r}; the folder is damaged."
            )
        if model is not None:
            check_same_model(folder, record.get("model"), model_signature(model))
        pearson, spearman = float(record.pop("pearson")), float(record.pop("spearman"))
        return cls(frame, str(config["kind"]), int(config["n_pairs"]), pearson, spearman, record)


CHECK_KIND = "attribution check"  # the kind its record.json carries


def check_attribution(
    model: Model,
    site: str | Site = "resid_post",
    task: Any = "builtin",
    *,
    kind: str = "patch",
    n_units: int = 40,
    n_items: int = 32,
    unaligned: str | None = None,
    blimp: str | Path | None = None,
    seed: int = 0,
    batch_size: int = 16,
    progress: bool = True,
) -> AttributionCheck:
    """Compare the attribution estimate with real patching for a sample of units.

    On ``n_items`` pairs of ``task`` (as for :func:`unit_attribution`, with the same
    ``blimp=``), the units are half those with the largest estimated effect
    (``|<kind>_mean|``) and half drawn at random from the rest; each is then really patched
    (``kind="patch"``: the clean run takes the unit's corrupted-run values) or zeroed in
    both runs (``kind="zero"``), and the mean change in the pair score is measured.

    Returns:
        An :class:`AttributionCheck` (the per-unit table, Pearson and Spearman r).
    """
    AttributionConfig(
        unaligned=unaligned, batch_size=batch_size, seed=seed, check_kind=kind,
        check_units=check_int("n_units", n_units, 2), check_items=n_items,
    )  # fmt: skip
    att = unit_attribution(
        model, site, task, n_items=n_items, unaligned=unaligned, blimp=blimp, seed=seed,
        batch_size=batch_size, progress=progress,
    )  # fmt: skip
    estimate = att.scores[f"{kind}_mean"]
    n_total = estimate.numel()
    if n_units > n_total:
        raise LocalizeError(f"n_units must be between 2 and {n_total}, got {n_units}.")
    flat = estimate.reshape(-1).abs().double()
    n_top = n_units // 2
    top = flat.topk(n_top).indices
    rest = torch.ones(n_total, dtype=torch.bool)
    rest[top] = False
    generator = torch.Generator().manual_seed(seed)
    candidates = rest.nonzero().flatten()
    random = candidates[torch.randperm(len(candidates), generator=generator)[: n_units - n_top]]
    chosen = [(int(i), "top") for i in top] + [(int(i), "random") for i in random]

    site_obj = get_site(att.site)
    width = estimate.shape[1]
    pairs = att.items
    tokenizer = hf_tokenizer(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = pair_batches(pairs, batch_size, pad)
    layers = sorted({i // width for i, _ in chosen})
    names = [site_obj.hook_name(layer) for layer in layers]
    base = []
    for _, good, bad, mask in batches:
        with torch.inference_mode():
            logits_g = model(good, attention_mask=mask)
            logits_b, cache_b = model.run_with_cache(
                bad, attention_mask=mask, names_filter=lambda n: n in names
            )
        base.append(
            (
                sequence_logprob(logits_g, good, mask).double(),
                sequence_logprob(logits_b, bad, mask).double(),
                {n: cache_b[n].reshape(*bad.shape, -1) for n in names},
            )
        )
    rows = []
    for index, sampled in tqdm(chosen, desc="patching", disable=not progress, leave=False):
        layer, unit = divmod(index, width)
        name = site_obj.hook_name(layer)
        change = 0.0
        for (_, good, bad, mask), (lp_g, lp_b, corrupted) in zip(batches, base, strict=True):
            if kind == "patch":
                new_g = _patched_logprobs(model, good, mask, name, unit, corrupted[name][..., unit])
                change += float((new_g - lp_g).sum())
            else:
                new_g = _patched_logprobs(model, good, mask, name, unit, None)
                new_b = _patched_logprobs(model, bad, mask, name, unit, None)
                change += float(((new_g - lp_g) - (new_b - lp_b)).sum())
        rows.append(
            {
                "layer": layer,
                "unit": unit,
                "sampled": sampled,
                "estimate": float(estimate[layer, unit]),
                "actual": change / len(pairs),
            }
        )
    frame = pd.DataFrame(rows)
    with warnings.catch_warnings():  # a constant column gives NaN, which is the answer
        warnings.simplefilter("ignore")
        pearson = float(sps.pearsonr(frame["estimate"], frame["actual"])[0])
        spearman = float(sps.spearmanr(frame["estimate"], frame["actual"])[0])
    record = {"model": att.record["model"], "site": att.site, "task": att.task}
    return AttributionCheck(frame, kind, len(pairs), pearson, spearman, record)


def plot_check(check: AttributionCheck) -> Any:
    """Attribution estimate against real patching, one point per sampled unit."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = check.frame
    fig, ax = plt.subplots(figsize=(4.5, 4))
    sns.scatterplot(data=frame, x="estimate", y="actual", hue="sampled", ax=ax)
    low = float(min(frame["estimate"].min(), frame["actual"].min()))
    high = float(max(frame["estimate"].max(), frame["actual"].max()))
    ax.plot([low, high], [low, high], color="0.5", linewidth=0.8, linestyle="--")
    ax.set_xlabel(f"attribution estimate ({check.kind})")
    ax.set_ylabel("real patching: change in log P(good) - log P(bad)")
    ax.set_title(f"r = {check.pearson:.2f}, rho = {check.spearman:.2f}")
    fig.tight_layout()
    plt.close(fig)
    return fig
