"""Batched, padded, attention-mask-aware forward passes that pool activations at hooks.

Texts are tokenized with the model's own tokenizer, sorted by length (less padding), padded
on the right with an attention mask, and run through the model with one forward hook per
requested hook name. Each hook pools over the real tokens of each text (``last`` token or
``mean``) and hands the pooled ``[batch, width]`` tensor on; the pass is stopped right after
the last hook needed, so later blocks and the unembedding are never computed.

:func:`accumulate_moments` streams these pooled activations into per-unit running moments
per condition, so memory does not grow with the number of stimuli.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens.model_bridge.exceptions import StopAtLayerException

from .contrast import POOLINGS
from .errors import LocalizeError, check_int
from .models import check_row, hf_tokenizer, model_dtype
from .precision import check_tolerance, scaled_difference
from .protocol import Hooks, Model
from .stats import Moments

__all__ = [
    "TokenBatch",
    "accumulate_moments",
    "check_pooling",
    "input_device",
    "iter_pooled",
    "pad_batches",
    "pooled_activations",
    "stacked_activations",
    "token_batches",
    "tokenize",
]


@dataclass
class TokenBatch:
    """Right-padded token ids of some texts; ``index`` are their positions in the input."""

    input_ids: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    index: Int[Tensor, " batch"]

    def on(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """``input_ids`` and ``attention_mask`` on ``device`` (where the embedding lives)."""
        return self.input_ids.to(device), self.attention_mask.to(device)


def input_device(model: Model) -> torch.device:
    """Where a model's inputs go: the device of its token embedding (for a model sharded
    with ``device_map``, the first layer's device; the CPU for a model on the CPU)."""
    embed = getattr(model, "embed", None)
    weight = getattr(embed, "W_E", None)
    if isinstance(weight, Tensor) and weight.device.type != "meta":
        return weight.device
    for param in model.parameters():  # type: ignore[attr-defined]
        if param.device.type != "meta":
            return param.device
    return torch.device("cpu")


def tokenize(
    model: Model,
    texts: Sequence[Any],
    *,
    truncate: int | None = None,
    prepend_bos: bool | None = None,
) -> list[list[int]]:
    """Token ids of each text, with the model's own tokenizer.

    ``prepend_bos=None`` keeps what the tokenizer does by default (SmolLM2 adds no BOS);
    ``True``/``False`` force a BOS token in or out. ``truncate`` keeps the first N tokens
    (BOS included), as ``tokenizer(text, truncation=True, max_length=N)`` does. A text
    longer than the model's context raises :class:`LocalizeError`.
    """
    tokenizer = hf_tokenizer(model)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise LocalizeError(f"Text {i} is a {type(text).__name__}, not a string: {text!r}.")
    kwargs: dict[str, Any] = {}
    if truncate is not None:
        check_int("truncate", truncate, 1)
        kwargs = {"truncation": True, "max_length": truncate}
    ids = tokenizer(list(texts), **kwargs)["input_ids"]
    bos = tokenizer.bos_token_id
    if prepend_bos is not None and bos is None:
        raise LocalizeError(
            "prepend_bos was requested but the tokenizer has no BOS token; pass prepend_bos=None."
        )
    if prepend_bos:
        ids = [seq if seq[:1] == [bos] else [bos, *seq] for seq in ids]
        if truncate is not None:
            ids = [seq[:truncate] for seq in ids]
    elif prepend_bos is False:
        ids = [seq[1:] if seq[:1] == [bos] else seq for seq in ids]
    n_ctx = int(model.cfg.n_ctx)
    for i, seq in enumerate(ids):
        if not seq:
            raise LocalizeError(f"Text {i} ({texts[i]!r}) tokenizes to no tokens.")
        if len(seq) > n_ctx:
            raise LocalizeError(
                f"Text {i} is {len(seq)} tokens long, longer than the model's context "
                f"({n_ctx}). Shorten it or pass truncate={n_ctx} to keep the first tokens."
            )
    return ids


def token_batches(
    model: Model,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    truncate: int | None = None,
    prepend_bos: bool | None = None,
) -> list[TokenBatch]:
    """Tokenize, sort by length, and cut into right-padded batches."""
    check_int("batch_size", batch_size, 1)
    ids = tokenize(model, texts, truncate=truncate, prepend_bos=prepend_bos)
    pad = hf_tokenizer(model).pad_token_id
    if pad is None and batch_size > 1:
        raise LocalizeError(
            "The tokenizer has no pad token, so texts cannot be batched. Padding is masked, "
            "so any token works: set tokenizer.pad_token = tokenizer.eos_token (on "
            "model.tokenizer, and on model.hf_tokenizer if present), or pass batch_size=1."
        )
    return pad_batches(ids, batch_size=batch_size, pad=pad if pad is not None else 0)


def pad_batches(ids: Sequence[Sequence[int]], *, batch_size: int, pad: int) -> list[TokenBatch]:
    """Sort token-id lists by length (ties in input order) and cut them into right-padded
    batches; lists of equal lengths give batches of the same order and masks."""
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    batches = []
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(ids[i]) for i in chunk)
        input_ids = torch.full((len(chunk), width), pad)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            input_ids[row, : len(ids[i])] = torch.tensor(list(ids[i]))
            mask[row, : len(ids[i])] = 1
        batches.append(TokenBatch(input_ids, mask, torch.tensor(chunk)))
    return batches


def _pool(
    acts: Float[Tensor, "batch pos ..."], mask: Int[Tensor, "batch pos"], pooling: str
) -> Float[Tensor, "batch width"]:
    acts = acts.reshape(acts.shape[0], acts.shape[1], -1)
    if pooling == "last":
        last = mask.sum(1) - 1
        return acts[torch.arange(acts.shape[0]), last]
    weights = mask.to(acts.dtype).unsqueeze(-1)
    return (acts * weights).sum(1) / weights.sum(1)


def run_pooled(
    model: Model,
    batch: TokenBatch,
    hook_names: Sequence[str],
    pooling: str,
    fwd_hooks: Hooks = (),
) -> dict[str, Float[Tensor, "batch width"]]:
    """One forward pass; pooled activations at each hook, stopping after the last one.

    ``fwd_hooks`` are extra hooks (for example an ablation) active during the pass.
    """
    if pooling not in POOLINGS:
        raise LocalizeError(f"Unknown pooling {pooling!r}; use one of {POOLINGS}.")
    pooled: dict[str, Tensor] = {}
    remaining = set(hook_names)

    def make_hook(name: str) -> Any:
        def hook(acts: Tensor, hook: Any) -> None:
            # pooled on the layer's own device, kept on the CPU (float32 for any dtype)
            mask = batch.attention_mask.to(acts.device)
            pooled[name] = _pool(acts.detach(), mask, pooling).float().cpu()
            remaining.discard(name)
            if not remaining:
                raise StopAtLayerException(acts)

        return hook

    hooks = [*fwd_hooks, *((name, make_hook(name)) for name in hook_names)]
    with torch.no_grad():
        ids, mask = batch.on(input_device(model))
        model.run_with_hooks(ids, attention_mask=mask, fwd_hooks=hooks)
    return pooled


def iter_pooled(
    model: Model,
    texts: Sequence[str],
    hook_names: Sequence[str],
    *,
    pooling: str = "last",
    batch_size: int = 32,
    truncate: int | None = None,
    prepend_bos: bool | None = None,
    fwd_hooks: Hooks = (),
    progress: bool = False,
    desc: str = "forward",
) -> Iterator[tuple[Int[Tensor, " batch"], dict[str, Float[Tensor, "batch width"]]]]:
    """Yield ``(index, {hook_name: pooled})`` batch by batch (texts sorted by length)."""
    unknown = [name for name in hook_names if name not in model.hook_dict]
    if unknown:
        raise LocalizeError(
            f"Unknown hook name {unknown[0]!r}. Hook names look like "
            "'blocks.3.hook_resid_post'; model.hook_dict lists them all."
        )
    batches = token_batches(
        model, texts, batch_size=batch_size, truncate=truncate, prepend_bos=prepend_bos
    )
    for batch in tqdm(batches, desc=desc, disable=not progress, leave=False):
        yield batch.index, run_pooled(model, batch, hook_names, pooling, fwd_hooks)


def pooled_activations(
    model: Model, texts: Sequence[str], hook_names: Sequence[str], **kwargs: Any
) -> dict[str, Float[Tensor, "n width"]]:
    """Pooled activations of every text at each hook, in input order (holds them all)."""
    out: dict[str, Tensor] = {}
    for index, pooled in iter_pooled(model, texts, hook_names, **kwargs):
        for name, acts in pooled.items():
            if name not in out:
                out[name] = torch.empty((len(texts), acts.shape[-1]), dtype=acts.dtype)
            out[name][index] = acts
    return out


def stacked_activations(
    model: Model, texts: Sequence[str], hook_names: Sequence[str], **kwargs: Any
) -> Float[Tensor, "n layer width"]:
    """:func:`pooled_activations` stacked as ``[n_texts, len(hook_names), width]``."""
    pooled = pooled_activations(model, texts, hook_names, **kwargs)
    return torch.stack([pooled[name] for name in hook_names], dim=1)


@dataclass
class ConditionMoments:
    """Running moments of one condition's pooled activations, ``[n_layers, width]``."""

    raw: Moments
    absolute: Moments


def accumulate_moments(
    model: Model, texts: Sequence[str], hook_names: Sequence[str], **options: Any
) -> ConditionMoments:
    """Stream the texts through the model; keep moments of the activations and of |activations|.

    Units are stacked as ``[len(hook_names), width]``; memory is independent of ``len(texts)``.
    ``options`` are :func:`iter_pooled`'s (pooling, batch size, truncation, BOS, progress).
    """
    raw = absolute = None
    for _, pooled in iter_pooled(model, texts, hook_names, **options):
        stacked = torch.stack([pooled[name] for name in hook_names], dim=1)
        if raw is None or absolute is None:
            raw = Moments.zeros(tuple(stacked.shape[1:]))
            absolute = Moments.zeros(tuple(stacked.shape[1:]))
        raw.update(stacked)
        absolute.update(stacked.abs())
    assert raw is not None and absolute is not None
    return ConditionMoments(raw, absolute)


def check_pooling(
    model: Model,
    texts: Sequence[str],
    *,
    site: str = "resid_post",
    pooling: str = "last",
    truncate: int | None = None,
    prepend_bos: bool | None = None,
) -> dict[str, Any]:
    """A model check: pooled activations of right-padded batches against one text at a time
    at every layer of ``site`` (the bridge once gave wrong logits for padded batches).

    The difference is :func:`tl_localize.precision.scaled_difference` (each unit against its
    own size plus its layer's typical size), and it passes within
    :func:`tl_localize.precision.check_tolerance` of the model's dtype and depth: ordinary
    rounding passes in bfloat16 as in float32, a batch padded wrongly fails in both. Texts
    of different lengths exercise the padding; texts of one length only the batching.
    """
    from .sites import get_site

    site_obj = get_site(site, model)
    names = [site_obj.hook_name(layer) for layer in range(model.cfg.n_layers)]
    texts = list(texts)
    options: dict[str, Any] = {"truncate": truncate, "prepend_bos": prepend_bos}
    batched = {}
    for batch in token_batches(model, texts, batch_size=len(texts), **options):
        pooled = run_pooled(model, batch, names, pooling)
        for row, index in enumerate(batch.index.tolist()):
            batched[index] = torch.stack([pooled[n][row] for n in names])
    worst = 0.0
    for i, text in enumerate(texts):
        single = token_batches(model, [text], batch_size=1, **options)[0]
        pooled = run_pooled(model, single, names, pooling)
        worst = max(
            worst, scaled_difference(batched[i], torch.stack([pooled[n][0] for n in names]))
        )
    dtype = model_dtype(model)
    tolerance = check_tolerance(dtype, int(model.cfg.n_layers))
    lengths = sorted({len(ids) for ids in tokenize(model, texts, **options)})
    return check_row(
        f"pooled_batched_vs_single@{site}",
        worst,
        tolerance,
        worst <= tolerance,
        f"max scaled difference over {len(texts)} texts of {lengths} tokens, {pooling} "
        f"pooling, {str(dtype).removeprefix('torch.')}",
    )
