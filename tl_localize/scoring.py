"""Token log-probabilities of texts, batched, under optional hook patches (e.g. an ablation).

Every evaluation that scores text goes through :func:`token_logprobs`: texts are tokenized
with the model's own tokenizer with a BOS token prepended (so that the first word is scored
too), sorted by length, right-padded with an attention mask, and run with ``fwd_hooks``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from .activations import input_device, token_batches
from .errors import LocalizeError
from .models import hf_tokenizer
from .protocol import Hooks, Model

__all__ = ["next_token_logprobs", "token_logprobs"]


def next_token_logprobs(
    logits: Float[Tensor, "batch pos vocab"], ids: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch next"]:
    """Log-probability of each token after the first given its prefix (padding included:
    mask it)."""
    logprobs = logits[:, :-1].float().log_softmax(-1)
    return logprobs.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def token_logprobs(
    model: Model,
    texts: Sequence[str],
    *,
    hooks: Hooks = (),
    batch_size: int = 64,
    progress: bool = False,
    desc: str = "scoring",
) -> list[Float[Tensor, " n_tokens"]]:
    """Log-probability (natural log) of each token of each text given its prefix.

    Returns one tensor per text (in input order) with one entry per token after the BOS
    token, so ``result[i].sum()`` is the text's log-probability.
    """
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise LocalizeError(f"Text {i} is empty or not a string ({text!r}); nothing to score.")
    if hf_tokenizer(model).bos_token_id is None:
        raise LocalizeError(
            "The tokenizer has no BOS token, so the first token of a text cannot be scored. "
            "Set tokenizer.bos_token (for example to the EOS token) before evaluating."
        )
    out: list[Tensor | None] = [None] * len(texts)
    batches = token_batches(model, texts, batch_size=batch_size, prepend_bos=True)
    for batch in tqdm(batches, desc=desc, disable=not progress, leave=False):
        ids, mask = batch.on(input_device(model))
        with torch.inference_mode():
            logits = model.run_with_hooks(ids, attention_mask=mask, fwd_hooks=list(hooks))
        picked = next_token_logprobs(logits.float().cpu(), batch.input_ids)
        lengths = batch.attention_mask.sum(1) - 1
        for row, index in enumerate(batch.index.tolist()):
            out[index] = picked[row, : lengths[row]].clone()
    return [t for t in out if t is not None]
