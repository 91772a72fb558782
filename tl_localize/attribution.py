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

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from safetensors.torch import load_file, save_file
from scipy import stats as sps
from torch import Tensor
from tqdm.auto import tqdm

from . import evaluate
from .ablation import patch_hook
from .activations import pad_batches, tokenize
from .errors import LocalizeError
from .localize import select_top
from .models import hf_tokenizer, model_signature
from .results import atomic_folder, now, versions
from .scoring import next_token_logprobs
from .sites import Site, get_site
from .units import Units, unit_table

__all__ = [
    "KINDS",
    "Attribution",
    "aligned_pairs",
    "check_attribution",
    "plot_check",
    "unit_attribution",
]

KINDS = ("patch", "zero", "dla")
SCORES = tuple(f"{kind}_{agg}" for kind in KINDS for agg in ("mean", "abs"))
FORMAT = "tl_localize.attribution/1"


def _pairs_frame(task: Any, blimp: str | Path | None) -> tuple[str, pd.DataFrame]:
    if isinstance(task, str):
        if task == "builtin":
            return task, evaluate.builtin_pairs()
        if task == "blimp":
            if blimp is None:
                raise LocalizeError("Task 'blimp' needs blimp='folder of BLiMP .jsonl files'.")
            return task, evaluate.load_blimp(blimp)
        raise LocalizeError(
            f"Unknown attribution task {task!r}: use 'builtin', 'blimp' (with blimp=folder), "
            "or minimal pairs (a DataFrame with sentence_good and sentence_bad)."
        )
    return "pairs", evaluate.minimal_pairs_frame(task)


def aligned_pairs(model: Any, pairs: Any, unaligned: str = "error") -> pd.DataFrame:
    """Minimal pairs with their token ids (BOS prepended) and the first differing position.

    Position-wise patching needs the two sentences of a pair to have the same number of
    tokens. ``unaligned="error"`` raises on the first pair that does not, naming it;
    ``"drop"`` leaves such pairs out (the returned frame's ``attrs["n_dropped"]`` counts
    them). Pairs whose sentences tokenize identically are always an error.
    """
    if unaligned not in ("error", "drop"):
        raise LocalizeError(f"unaligned must be 'error' or 'drop', got {unaligned!r}.")
    frame = evaluate.minimal_pairs_frame(pairs)
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
    out.attrs["n_dropped"] = len(frame) - len(out)
    return out


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
    model: Any, ids: Tensor, mask: Tensor, names: Sequence[str], extra: Sequence[str] = ()
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


def _dla_directions(model: Any, site_name: str, gvec: Tensor) -> Tensor:
    """``[layer, batch, width]``: each unit's direct-path weight on the logit difference."""
    n_layers = int(model.cfg.n_layers)
    if site_name in ("resid_post", "mlp_out", "attn_out"):
        out = gvec.unsqueeze(0).expand(n_layers, *gvec.shape).clone()
        if site_name == "resid_post":
            out[:-1] = torch.nan
        return out
    if site_name == "mlp_post":
        return torch.einsum("lnd,bd->lbn", model.W_out.detach().float(), gvec)
    if site_name == "attn_z":
        w_o = model.W_O.detach().float()
        return torch.einsum("lhed,bd->lbhe", w_o, gvec).flatten(2)
    raise LocalizeError(f"No direct logit attribution is defined for site {site_name!r}.")


class Attribution:
    """Per-unit attribution scores for a task (see the module docstring).

    Attributes:
        scores: ``[n_layers, width]`` tensors ``patch_mean``, ``patch_abs``, ``zero_mean``,
            ``zero_abs``, ``dla_mean``, ``dla_abs``.
        items: one row per pair: the pair, ``logprob_good``, ``logprob_bad``, ``score``,
            ``logit_diff`` (at the first differing position), ``first_diff``.
        site: the unit site; model: the model's name; record: how it was made.
    """

    def __init__(
        self,
        scores: dict[str, Tensor],
        items: pd.DataFrame,
        site: str,
        model: str,
        record: dict[str, Any],
    ) -> None:
        self.scores = scores
        self.items = items
        self.site = site
        self.model = model
        self.record = record

    def __repr__(self) -> str:
        shape = tuple(self.scores["patch_mean"].shape)
        return (
            f"Attribution({self.record.get('task')!r} on {self.model!r} at {self.site!r}: "
            f"{len(self.items)} pairs, {shape[0]} layers x {shape[1]} units)"
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per unit: ``layer``, ``unit`` and the six scores."""
        return unit_table({name: self.scores[name].double() for name in SCORES})

    def top(self, top: float | int | str, score: str = "patch_abs") -> Units:
        """The units with the highest ``score`` (a fraction or a count, over all layers)."""
        if score not in self.scores:
            raise LocalizeError(f"Unknown score {score!r}; scores: {list(self.scores)}.")
        values = self.scores[score]
        if score.endswith("_mean"):
            values = values.abs()
        return Units(select_top(values, top), self.site, self.model)

    def save(self, folder: str | Path, *, force: bool = False) -> Path:
        """Write ``attribution.safetensors`` (scores), ``attribution.csv`` (one row per unit),
        ``items.csv`` and ``record.json`` to ``folder``, atomically."""
        with atomic_folder(folder, force=force) as tmp:
            self.write(tmp)
        return Path(folder)

    def write(self, folder: Path) -> None:
        """Write :meth:`save`'s files into an existing folder."""
        meta = {"format": FORMAT, "site": self.site, "model": self.model}
        tensors = {k: v.contiguous() for k, v in self.scores.items()}
        save_file(tensors, str(folder / "attribution.safetensors"), metadata=meta)
        self.to_frame().to_csv(folder / "attribution.csv", index=False)
        items = self.items.drop(columns=["ids_good", "ids_bad"], errors="ignore")
        items.to_csv(folder / "items.csv", index=False)
        (folder / "record.json").write_text(json.dumps(self.record, indent=2, default=str))

    @classmethod
    def load(cls, folder: str | Path, model: Any | None = None) -> Attribution:
        """Read a folder written by :meth:`save` (refusing another model's when given one)."""
        folder = Path(folder)
        path = folder / "attribution.safetensors"
        if not path.is_file():
            raise LocalizeError(f"{folder} holds no attribution.safetensors: not an attribution.")
        from safetensors.torch import safe_open

        with safe_open(str(path), "pt") as handle:
            meta = handle.metadata() or {}
        if meta.get("format") != FORMAT:
            raise LocalizeError(f"{path} is not a tl_localize attribution file.")
        scores = load_file(str(path))
        if model is not None and meta["model"] != model.cfg.model_name:
            raise LocalizeError(
                f"{folder} was computed for model {meta['model']!r}, not "
                f"{model.cfg.model_name!r}; recompute it for this model."
            )
        record = json.loads((folder / "record.json").read_text())
        items = pd.read_csv(folder / "items.csv")
        return cls(scores, items, meta["site"], meta["model"], record)


def unit_attribution(
    model: Any,
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
        task: ``"builtin"`` (the toolkit's minimal pairs; pairs that do not align under this
            model's tokenizer are left out), ``"blimp"`` (with ``blimp=folder``), or minimal
            pairs (a DataFrame or list with ``sentence_good`` and ``sentence_bad``).
        n_items: use a random sample of this many pairs (``seed``); default all.
        unaligned: ``"error"`` or ``"drop"`` for pairs whose sentences tokenize to different
            lengths; default ``"drop"`` for the built-in suite, ``"error"`` otherwise.

    Returns:
        An :class:`Attribution`; ``to_frame()`` gives one row per unit.
    """
    site_obj = get_site(site, model)
    name, frame = _pairs_frame(task, blimp)
    if unaligned is None:
        unaligned = "drop" if name == "builtin" else "error"
    if batch_size < 1:
        raise LocalizeError(f"batch_size must be at least 1, got {batch_size}.")
    pairs = aligned_pairs(model, frame, unaligned)
    n_dropped = pairs.attrs["n_dropped"]
    if n_items is not None:
        if n_items < 1:
            raise LocalizeError(f"n_items must be at least 1, got {n_items}.")
        if n_items < len(pairs):
            pairs = pairs.sample(n=n_items, random_state=seed).reset_index(drop=True)
    tokenizer = hf_tokenizer(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    n_layers = int(model.cfg.n_layers)
    width = site_obj.n_units(model)
    names = [site_obj.hook_name(layer) for layer in range(n_layers)]
    center = str(model.cfg.normalization_type or "").upper().startswith("LN")
    gamma = _final_norm_weight(model)
    w_u = model.W_U.detach().float()

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
    return Attribution(scores, items, site_obj.name, model.cfg.model_name, record)


def _final_norm_weight(model: Any) -> Tensor:
    params = dict(model.ln_final.named_parameters())
    weight = next((v for k, v in params.items() if k.endswith("weight")), None)
    if weight is None:
        return torch.ones(int(model.cfg.d_model))
    return weight.detach().float()


def _patched_logprobs(
    model: Any,
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


def check_attribution(
    model: Any,
    site: str | Site = "resid_post",
    task: Any = "builtin",
    *,
    kind: str = "patch",
    n_units: int = 40,
    n_items: int = 32,
    unaligned: str | None = None,
    seed: int = 0,
    batch_size: int = 32,
    progress: bool = True,
) -> pd.DataFrame:
    """Compare the attribution estimate with real patching for a sample of units.

    On ``n_items`` pairs, the units are half those with the largest estimated effect
    (``|<kind>_mean|``) and half drawn at random from the rest; each is then really patched
    (``kind="patch"``: the clean run takes the unit's corrupted-run values) or zeroed in
    both runs (``kind="zero"``), and the mean change in the pair score is measured.

    Returns:
        One row per unit: ``layer``, ``unit``, ``sampled`` (``top``/``random``),
        ``estimate``, ``actual``; ``attrs["pearson"]`` and ``attrs["spearman"]`` hold the
        correlations over the sample.
    """
    if kind not in ("patch", "zero"):
        raise LocalizeError(f"check_attribution checks 'patch' or 'zero', got {kind!r}.")
    att = unit_attribution(
        model, site, task, n_items=n_items, unaligned=unaligned, seed=seed,
        batch_size=batch_size, progress=progress,
    )  # fmt: skip
    estimate = att.scores[f"{kind}_mean"]
    n_total = estimate.numel()
    if not 2 <= n_units <= n_total:
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
    frame.attrs["kind"] = kind
    frame.attrs["n_pairs"] = len(pairs)
    frame.attrs["pearson"] = float(sps.pearsonr(frame["estimate"], frame["actual"])[0])
    frame.attrs["spearman"] = float(sps.spearmanr(frame["estimate"], frame["actual"])[0])
    return frame


def plot_check(frame: pd.DataFrame) -> Any:
    """Attribution estimate against real patching, one point per sampled unit."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(4.5, 4))
    sns.scatterplot(data=frame, x="estimate", y="actual", hue="sampled", ax=ax)
    low = float(min(frame["estimate"].min(), frame["actual"].min()))
    high = float(max(frame["estimate"].max(), frame["actual"].max()))
    ax.plot([low, high], [low, high], color="0.5", linewidth=0.8, linestyle="--")
    kind = frame.attrs.get("kind", "patch")
    ax.set_xlabel(f"attribution estimate ({kind})")
    ax.set_ylabel("real patching: change in log P(good) - log P(bad)")
    ax.set_title(
        f"r = {frame.attrs.get('pearson', float('nan')):.2f}, "
        f"rho = {frame.attrs.get('spearman', float('nan')):.2f}"
    )
    fig.tight_layout()
    plt.close(fig)
    return fig
