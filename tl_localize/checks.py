"""Model checks: does this model's wiring give the numbers the toolkit relies on?

TransformerLens' bridge has shipped silent numerical bugs (left padding once gave wrong
logits; with transformers 5.x, KV-cached generation ignored the cache on most families until
:mod:`tl_localize.adapters` fixed it), so a run can prove its own wiring before it reports.
:func:`check_model` returns one row per named check with the measured value, the tolerance
and the status:

- ``logits_vs_transformers``: the bridge's logits against the plain transformers model
  loaded from the same files (eager attention), on a few texts;
- ``pooled_batched_vs_single@<site>``: pooled activations of right-padded batches against
  one text at a time, at every site;
- ``empty_ablation_is_identity``: logits under ``ablated`` with an empty unit set are
  bit-identical to the intact logits; ``ablation_changes_logits``: a non-empty set changes
  them;
- ``padding_leaves_logits``: a text's logits alone and right-padded in a batch agree;
- ``bos``: BOS handling is what the tokenizer declares (prepended exactly once when asked);
- ``generation_kv_cache``: the logits of each step of greedy generation with the KV cache
  against a forward pass without it over the same tokens, within a tolerance for the
  model's dtype.

:func:`tl_localize.models.kv_cache_agrees` (called by ``load_model``) runs the last check
once per model and keeps the result (on disk, by the weights' fingerprint); where it fails,
one warning names the check and the toolkit's own generation runs without the cache.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from .activations import check_pooling, token_batches
from .errors import LocalizeError
from .models import (
    check_row,
    generation_check,
    hf_tokenizer,
    model_dtype,
    model_fingerprint,
    untrained_hf_model,
)
from .precision import check_tolerance, scaled_difference
from .protocol import Model
from .sites import SITES, get_site
from .units import Units

__all__ = ["TEXTS", "check_model"]

TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "A short one.",
    "Green ideas sleep while the committee debates.",
)
# float32 floors of the logits checks; other dtypes scale with their epsilon and the depth
# (tl_localize.precision.check_tolerance)
TOLERANCE = {"logits": 1e-3, "padding": 1e-3}


def _tolerance(model: Model, kind: str, dtype: torch.dtype | None = None) -> float:
    return check_tolerance(
        dtype or model_dtype(model), int(model.cfg.n_layers), floor=TOLERANCE[kind]
    )


def _logits(model: Model, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    with torch.inference_mode():
        return model(ids, attention_mask=mask).float()


def _transformers_logits(model: Model, texts: Sequence[str]) -> dict:
    source = getattr(model, "tl_localize_source", None)
    if not isinstance(source, dict):
        return check_row("logits_vs_transformers", float("nan"), _tolerance(model, "logits"), None,
                    "no transformers model behind this bridge (built natively)")  # fmt: skip
    from transformers import AutoModelForCausalLM

    dtype = getattr(torch, source["dtype"].removeprefix("torch."))
    if source.get("untrained"):  # the same fresh weights, rebuilt from the same seed
        reference = untrained_hf_model(
            source["source"], seed=source["init_seed"], revision=source.get("revision"),
            attn_implementation="eager",
        ).to(dtype).eval()  # fmt: skip
    else:
        reference = AutoModelForCausalLM.from_pretrained(
            source["source"], revision=source.get("revision"), dtype=dtype,
            attn_implementation="eager",
        ).eval()  # fmt: skip
    worst = 0.0
    tokenizer = hf_tokenizer(model)
    for text in texts:
        ids = tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            expected = reference(ids).logits.float()
        worst = max(worst, scaled_difference(_logits(model, ids)[0], expected[0]))
    del reference
    tolerance = _tolerance(model, "logits", dtype)
    return check_row("logits_vs_transformers", worst, tolerance, worst <= tolerance,
                f"max scaled difference of the logits on {len(texts)} texts")  # fmt: skip


def _ablation_checks(model: Model, text: str) -> list[dict]:
    from .ablation import ablated

    site = get_site("resid_post", model)
    width = site.n_units(model)
    n_layers = int(model.cfg.n_layers)
    ids = hf_tokenizer(model)(text, return_tensors="pt")["input_ids"]
    intact = _logits(model, ids)
    empty = Units(torch.zeros(n_layers, width, dtype=torch.bool), "resid_post",
                  model.cfg.model_name, fingerprint=model_fingerprint(model))  # fmt: skip
    with ablated(model, empty):
        same = _logits(model, ids)
    some = torch.zeros(n_layers, width, dtype=torch.bool)
    some[:, : max(1, width // 10)] = True
    with ablated(model, empty.with_mask(some)):
        changed = _logits(model, ids)
    difference = float((same - intact).abs().max())
    moved = float((changed - intact).abs().max())
    return [
        check_row("empty_ablation_is_identity", difference, 0.0, difference == 0.0,
             "max |difference| of the logits with an empty unit set ablated"),
        check_row("ablation_changes_logits", moved, 0.0, moved > 0.0,
             "max |difference| of the logits with 10% of the block outputs zeroed"),
    ]  # fmt: skip


def _padding_check(model: Model, texts: Sequence[str]) -> dict:
    short, long = sorted(texts, key=len)[0], sorted(texts, key=len)[-1]
    batch = token_batches(model, [short, long], batch_size=2)[0]
    logits = _logits(model, batch.input_ids, batch.attention_mask)
    row = batch.index.tolist().index(0)
    n = int(batch.attention_mask[row].sum())
    alone = _logits(model, batch.input_ids[row : row + 1, :n])
    worst = scaled_difference(logits[row, :n], alone[0])
    tolerance = _tolerance(model, "padding")
    return check_row(
        "padding_leaves_logits", worst, tolerance, worst <= tolerance,
        "max scaled difference of a text's logits right-padded in a batch against alone",
    )  # fmt: skip


def _bos_check(model: Model) -> dict:
    from .activations import tokenize

    tokenizer = hf_tokenizer(model)
    bos = tokenizer.bos_token_id
    if bos is None:
        return check_row("bos", float("nan"), None, None, "the tokenizer declares no BOS token")
    ids = tokenize(model, ["a b"], prepend_bos=True)[0]
    ok = ids[0] == bos and ids.count(bos) == 1
    default = tokenize(model, ["a b"])[0]
    detail = (
        f"BOS {tokenizer.decode([bos])!r} prepended once when asked; by default the tokenizer "
        f"{'adds' if default[:1] == [bos] else 'does not add'} it"
    )
    return check_row("bos", float(ids.count(bos)), 1.0, ok, detail)


def check_model(
    model: Model,
    *,
    texts: Sequence[str] = TEXTS,
    sites: Sequence[str] | None = None,
    generation: bool = True,
) -> pd.DataFrame:
    """Run every check (see the module docstring); one row per check: ``check``, ``value``,
    ``tolerance``, ``passed``, ``status`` (``pass``, ``fail`` or ``skip``), ``detail``.

    >>> frame = check_model(model, generation=False)
    >>> bool(frame["passed"].all())
    True
    """
    texts = list(texts)
    if not texts:
        raise LocalizeError("check_model needs at least one text.")
    rows = [_transformers_logits(model, texts)]
    for site in sites or [s for s in SITES if SITES[s].hook_name(0) in model.hook_dict]:
        rows.append(check_pooling(model, texts, site=site))
    rows += _ablation_checks(model, texts[0])
    rows.append(_padding_check(model, texts))
    rows.append(_bos_check(model))
    if generation:
        rows.append(generation_check(model))
    return pd.DataFrame(rows)
