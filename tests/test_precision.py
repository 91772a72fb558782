"""Checks that know their precision: ordinary rounding passes in every dtype, a wrongly
padded batch fails in every dtype (tiny models; fast tier)."""

import pytest
import torch

import tl_localize.activations as activations
from conftest import save_tiny_hf, tiny_model
from tl_localize import Units, load_model
from tl_localize.activations import TokenBatch, check_pooling
from tl_localize.checks import check_model
from tl_localize.precision import (
    FACTOR,
    PrecisionWarning,
    check_tolerance,
    machine_epsilon,
    scaled_difference,
)

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# different lengths, so that the batch is padded
TEXTS = ["a b", "the cat sat on the mat", "a much longer sentence about a dog"]


def left_pad_batches(ids, *, batch_size, pad):
    """The bug: pads on the left (the real tokens move to later positions)."""
    batches = []
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(ids[i]) for i in chunk)
        input_ids = torch.full((len(chunk), width), pad)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            input_ids[row, width - len(ids[i]) :] = torch.tensor(ids[i])
            mask[row, width - len(ids[i]) :] = 1
        batches.append(TokenBatch(input_ids, mask, torch.tensor(chunk)))
    return batches


def pool_left_padded(acts, mask, pooling):
    acts = acts.reshape(acts.shape[0], acts.shape[1], -1)
    if pooling == "last":
        return acts[:, -1]
    weights = mask.to(acts.dtype).unsqueeze(-1)
    return (acts * weights).sum(1) / weights.sum(1)


def pool_ignoring_mask(acts, mask, pooling):
    """The bug: pooling reads the pad tokens (the last column; the mean over every column)."""
    acts = acts.reshape(acts.shape[0], acts.shape[1], -1)
    return acts[:, -1] if pooling == "last" else acts.mean(1)


def break_padding(monkeypatch, how):
    """``left``: left padding with the attention mask (the real tokens move to later
    positions, which the model's positions from the mask undo: rounding only);
    ``left_no_mask``: left padding, and the mask is not given to the model (real tokens
    attend to the pads); ``pool_pads``: right padding, pooled over the pads."""
    if how == "pool_pads":
        monkeypatch.setattr(activations, "_pool", pool_ignoring_mask)
        return
    monkeypatch.setattr(activations, "pad_batches", left_pad_batches)
    monkeypatch.setattr(activations, "_pool", pool_left_padded)
    if how == "left_no_mask":
        monkeypatch.setattr(
            TokenBatch, "on", lambda self, device: (self.input_ids, torch.ones_like(self.input_ids))
        )


BUGS = ("left_no_mask", "pool_pads")


def test_tolerance_grows_with_epsilon_and_depth():
    assert check_tolerance(torch.float32, 30) == 1e-4  # the float32 floor
    assert machine_epsilon(torch.bfloat16) == 2**-7 and machine_epsilon(torch.float16) == 2**-10
    bf16 = [check_tolerance(torch.bfloat16, n) for n in (2, 8, 30)]
    assert bf16 == sorted(bf16) and bf16[-1] == pytest.approx(FACTOR * 2**-7 * 30**0.5)
    assert check_tolerance(torch.float16, 30) < check_tolerance(torch.bfloat16, 30)


def test_scaled_difference_sees_ordinary_units_past_a_massive_one():
    reference = torch.tensor([[500.0, 3.0, -2.0, 4.0, 1.0]])
    rounded = reference * (1 + 2**-8)  # every value off by bfloat16's rounding
    shifted = reference + torch.tensor([[0.0, 3.0, -2.0, 4.0, 1.0]])  # ordinary units moved
    assert scaled_difference(rounded, reference) < 2**-7
    assert scaled_difference(shifted, reference) > 0.4
    # a plain max-over-max ratio would rate the bug below bfloat16's rounding of 500
    assert float((shifted - reference).abs().max() / reference.abs().max()) < 0.01
    assert scaled_difference(torch.zeros(2, 3), torch.zeros(2, 3)) == 0.0


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_pooling_check_passes_rounding_and_fails_wrong_padding(dtype, pooling, monkeypatch):
    model = tiny_model(n_layers=4, dtype=dtype)
    found = check_pooling(model, TEXTS, pooling=pooling)
    assert found["passed"], found
    assert found["tolerance"] == check_tolerance(dtype, 4)
    assert str(dtype).removeprefix("torch.") in found["detail"]
    with monkeypatch.context() as patch:
        break_padding(patch, "left")
        assert check_pooling(model, TEXTS, pooling=pooling)["passed"]
    for how in BUGS:
        with monkeypatch.context() as patch:
            break_padding(patch, how)
            broken = check_pooling(model, TEXTS, pooling=pooling)
        assert not broken["passed"], (how, broken)
        assert broken["value"] > 10 * broken["tolerance"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_rotary_model_tells_rounding_from_a_missing_mask(dtype, tmp_path, monkeypatch):
    """A deeper rotary model: left padding with the mask moves the tokens to other
    positions, which changes nothing but rounding (passes); the bugs fail."""
    folder = save_tiny_hf(tmp_path / "llama", "llama", layers=12)
    model = load_model(folder, dtype=dtype, check_generation=False)
    with monkeypatch.context() as patch:
        break_padding(patch, "left")
        rounding = check_pooling(model, TEXTS)
    assert rounding["passed"], rounding
    for how in BUGS:
        with monkeypatch.context() as patch:
            break_padding(patch, how)
            broken = check_pooling(model, TEXTS)
        assert not broken["passed"] and broken["value"] > 5 * broken["tolerance"], broken


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_check_model_passes_in_each_dtype(dtype, tmp_path):
    folder = save_tiny_hf(tmp_path / "llama", "llama")
    model = load_model(folder, dtype=dtype, check_generation=False)
    frame = check_model(model, generation=False).set_index("check")
    assert frame["passed"].all(), frame
    depth = int(model.cfg.n_layers)
    assert frame.loc["padding_leaves_logits", "tolerance"] == check_tolerance(
        dtype, depth, floor=1e-3
    )
    assert frame.loc["logits_vs_transformers", "status"] == "pass"


def test_unit_sets_of_two_precisions_say_so(tiny):
    mask = torch.zeros(3, 32, dtype=torch.bool)
    mask[0, :4] = True
    a = Units(mask, "resid_post", "tiny", dtype="float32")
    b = Units(mask, "resid_post", "tiny", dtype="bfloat16")
    with pytest.warns(PrecisionWarning, match="bfloat16 and float32|float32 and bfloat16"):
        assert a.jaccard(b) == 1.0
    with pytest.warns(PrecisionWarning):
        _ = a & b
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert a.jaccard(a) == 1.0  # one precision: nothing to say
        assert a.jaccard(Units(mask, "resid_post", "tiny")) == 1.0  # unknown: nothing to say
