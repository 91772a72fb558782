import pytest
import torch

from tl_localize import LocalizeError
from tl_localize.activations import (
    accumulate_moments,
    pooled_activations,
    token_batches,
    tokenize,
)

TEXTS = ["the cat sat on the mat", "hi", "a much longer sentence about dogs", "zorp flim", "ok"]
HOOKS = ["blocks.0.hook_resid_post", "blocks.2.mlp.hook_post", "blocks.1.attn.hook_z"]


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_batched_equals_one_at_a_time(tiny, pooling):
    """Right padding with an attention mask changes nothing for the real tokens.

    Tolerance: 1e-5 absolute (float32 kernels may sum in another order for other shapes).
    """
    batched = pooled_activations(tiny, TEXTS, HOOKS, pooling=pooling, batch_size=4)
    single = pooled_activations(tiny, TEXTS, HOOKS, pooling=pooling, batch_size=1)
    for name in HOOKS:
        assert batched[name].shape == single[name].shape
        torch.testing.assert_close(batched[name], single[name], atol=1e-5, rtol=0)
    assert batched["blocks.1.attn.hook_z"].shape == (5, 4 * 8)
    assert batched["blocks.2.mlp.hook_post"].shape == (5, 64)


def test_pooling_matches_a_plain_cache(tiny):
    text = TEXTS[0]
    ids = torch.tensor([tokenize(tiny, [text])[0]])
    _, cache = tiny.run_with_cache(ids, names_filter="blocks.0.hook_resid_post")
    full = cache["blocks.0.hook_resid_post"][0]
    last = pooled_activations(tiny, [text], HOOKS[:1], pooling="last")[HOOKS[0]][0]
    mean = pooled_activations(tiny, [text], HOOKS[:1], pooling="mean")[HOOKS[0]][0]
    torch.testing.assert_close(last, full[-1])
    torch.testing.assert_close(mean, full.mean(0))


def test_truncation_and_bos(tiny):
    ids = tokenize(tiny, ["abcdefgh"], truncate=4)[0]
    assert ids == [1, *tokenize(tiny, ["abc"])[0][1:]]
    assert len(ids) == 4
    assert tokenize(tiny, ["abc"], prepend_bos=False)[0][0] != 1
    assert tokenize(tiny, ["abc"], prepend_bos=True)[0] == tokenize(tiny, ["abc"])[0]


def test_batches_sort_by_length_and_keep_index(tiny):
    batches = token_batches(tiny, TEXTS, batch_size=2)
    order = torch.cat([b.index for b in batches]).tolist()
    assert sorted(order) == list(range(len(TEXTS)))
    lengths = [int(b.attention_mask.sum(1).max()) for b in batches]
    assert lengths == sorted(lengths)


def test_moments_do_not_depend_on_batching(tiny):
    hooks = ["blocks.0.hook_resid_post", "blocks.2.hook_resid_post"]
    a = accumulate_moments(tiny, TEXTS, hooks, batch_size=1, pooling="mean")
    b = accumulate_moments(tiny, TEXTS, hooks, batch_size=3, pooling="mean")
    assert a.raw.mean.shape == (2, 32)
    assert a.raw.n == b.raw.n == len(TEXTS)
    torch.testing.assert_close(a.raw.mean, b.raw.mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.absolute.var, b.absolute.var, atol=1e-5, rtol=1e-4)


def test_text_longer_than_context(tiny):
    with pytest.raises(LocalizeError, match=r"Text 1 is 101 tokens long.*context \(64\)"):
        tokenize(tiny, ["short", "x" * 100])
    assert len(tokenize(tiny, ["x" * 100], truncate=64)[0]) == 64


def test_unknown_hook_and_non_string(tiny):
    with pytest.raises(LocalizeError, match="Unknown hook name 'blocks.0.hook_nothing'"):
        pooled_activations(tiny, TEXTS, ["blocks.0.hook_nothing"])
    with pytest.raises(LocalizeError, match="Text 1 is a int"):
        tokenize(tiny, ["fine", 7])


def test_tokenizer_without_pad_token(tiny):
    tokenizer = tiny.tokenizer
    saved = tokenizer.pad_token
    tokenizer.pad_token = None
    try:
        with pytest.raises(LocalizeError, match="no pad token.*pad_token = tokenizer.eos_token"):
            token_batches(tiny, TEXTS, batch_size=2)
        assert len(token_batches(tiny, TEXTS, batch_size=1)) == len(TEXTS)
    finally:
        tokenizer.pad_token = saved
