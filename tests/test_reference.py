"""The alkhamissi2025 preset against an independent implementation of the reference loop.

The reference loop here uses no TransformerLens and no tl_localize code: plain transformers
forward hooks on each decoder layer, one stimulus per forward pass, the tokenizer's default
tokenization truncated to 12 tokens, the last token, every activation stored as float64,
scipy's Welch t-test on absolute values, global top-k with k = int(0.01 * n_units). The
preset with ``batch_size=1`` reproduces it exactly; batched, it selects the same units.
"""

import numpy as np
import pytest
import torch
from scipy import stats as sps

from tl_localize import Contrast, localize

pytestmark = pytest.mark.model

N = 40


def reference_loop(hf_model, tokenizer, texts):
    layers = hf_model.model.layers
    store = {}
    handles = [
        layer.register_forward_hook(
            lambda mod, args, out, i=i: store.__setitem__(
                i, out[0] if isinstance(out, tuple) else out
            )
        )
        for i, layer in enumerate(layers)
    ]
    rows = []
    try:
        for text in texts:
            enc = tokenizer(text, truncation=True, max_length=12, return_tensors="pt")
            with torch.no_grad():
                hf_model(**enc)
            rows.append(np.stack([store[i][0, -1].double().numpy() for i in range(len(layers))]))
    finally:
        for handle in handles:
            handle.remove()
    return np.stack(rows)


def test_preset_reproduces_the_reference_loop(default_model):
    full = Contrast.builtin("language")
    contrast = Contrast("language", {"s": full.positive[:N], "n": full.negative[:N]}, "s", "n")
    # batch_size=1 is the exact mode: one stimulus per pass, as the reference runs
    loc = localize(default_model, contrast, preset="alkhamissi2025", batch_size=1, progress=False)
    batched = localize(default_model, contrast, preset="alkhamissi2025", progress=False)

    hf_model, tokenizer = default_model.original_model, default_model.hf_tokenizer
    pos = reference_loop(hf_model, tokenizer, contrast.positive)
    neg = reference_loop(hf_model, tokenizer, contrast.negative)
    t = sps.ttest_ind(np.abs(pos), np.abs(neg), axis=0, equal_var=False).statistic
    k = int(0.01 * t.size)
    assert len(loc.units) == k == 172
    np.testing.assert_allclose(loc.stats["t"].numpy(), t, rtol=1e-6, atol=1e-6)
    expected = np.zeros(t.size, dtype=bool)
    expected[np.argsort(-t.reshape(-1), kind="stable")[:k]] = True
    assert (loc.units.mask.reshape(-1).numpy() == expected).all()
    # batched (right-padded, length-sorted): the same units, t equal to float32 precision
    assert batched.config.batch_size == 32 and batched.units == loc.units
    np.testing.assert_allclose(batched.stats["t"].numpy(), t, rtol=1e-4, atol=1e-4)
