"""Attribution per unit on tiny random models: estimates against real patching, the metric
against the evaluations' scoring, saving, and bad input."""

import numpy as np
import pytest
import torch

from tl_localize import Attribution, LocalizeError, check_attribution, evaluate, unit_attribution
from tl_localize.attribution import aligned_pairs
from tl_localize.sites import Site


@pytest.mark.parametrize(
    ("site", "kind"),
    [("resid_post", "patch"), ("mlp_post", "patch"), ("attn_z", "patch"), ("mlp_out", "zero")],
)
def test_estimates_track_real_patching(tiny, site, kind, toy_pairs):
    check = check_attribution(
        tiny, site, toy_pairs, kind=kind, n_units=12, n_items=5, progress=False
    )
    frame = check.frame
    assert len(check) == 12 and set(frame["sampled"]) == {"top", "random"}
    # a tiny random model is nearly linear in one unit: the estimate is close to the truth
    assert check.pearson > 0.9, frame
    top = frame[frame["sampled"] == "top"]
    assert top["actual"].abs().mean() > frame[frame["sampled"] == "random"]["actual"].abs().mean()
    assert check.to_frame()["kind"].eq(kind).all()


def test_scores_and_items(tiny, toy_pairs):
    att = unit_attribution(tiny, "resid_post", toy_pairs, progress=False)
    assert set(att.scores) == {
        "patch_mean", "patch_abs", "zero_mean", "zero_abs", "dla_mean", "dla_abs",
    }  # fmt: skip
    for name, tensor in att.scores.items():
        assert tuple(tensor.shape) == (3, 32), name
    assert (att.scores["patch_abs"] >= att.scores["patch_mean"].abs() - 1e-6).all()
    # direct logit attribution of resid_post is defined at the last layer only
    assert att.scores["dla_mean"][:2].isnan().all() and att.scores["dla_mean"][2].isfinite().all()
    # the pair metric is the evaluations' own score
    scored = evaluate.minimal_pairs(tiny, toy_pairs, progress=False)
    np.testing.assert_allclose(att.items["logprob_good"], scored["logprob_good"], rtol=1e-4)
    np.testing.assert_allclose(
        att.items["score"], scored["logprob_good"] - scored["logprob_bad"], rtol=1e-4, atol=1e-4
    )
    frame = att.to_frame()
    assert len(frame) == 96 and list(frame.columns[:5]) == [
        "model",
        "task",
        "site",
        "layer",
        "unit",
    ]
    assert len(att.top(5)) == 5 and len(att.top(0.1, "zero_mean")) == 9


def test_neuron_and_head_dla_add_up_to_their_output_sites(tiny, toy_pairs):
    # mlp_out = mlp_post @ W_out + b_out: per layer, the neurons' direct effects sum to the
    # output dimensions' direct effects minus the bias's, which is the same for every pair
    sums = {}
    for site in ("mlp_post", "mlp_out", "attn_z", "attn_out"):
        att = unit_attribution(tiny, site, toy_pairs[:1], progress=False)
        sums[site] = att.scores["dla_mean"].sum(1)
    w_u = tiny.W_U.detach()
    b_out = torch.stack([tiny.blocks[i].mlp.out.bias.detach() for i in range(3)])
    b_o = torch.stack([tiny.blocks[i].attn.o.bias.detach() for i in range(3)])
    pairs, n_dropped = aligned_pairs(tiny, toy_pairs[:1])
    assert n_dropped == 0
    ids = pairs.iloc[0]
    pos, g, b = (
        ids["first_diff"] - 1,
        ids["ids_good"][ids["first_diff"]],
        ids["ids_bad"][ids["first_diff"]],
    )
    _, cache = tiny.run_with_cache(torch.tensor([ids["ids_good"]]))
    scale = cache["ln_final.hook_scale"][0, pos]
    gamma = dict(tiny.ln_final.named_parameters())
    weight = next(v for k, v in gamma.items() if k.endswith("weight")).detach()
    direction = (w_u[:, g] - w_u[:, b]) * weight
    direction = (direction - direction.mean()) / scale
    torch.testing.assert_close(
        sums["mlp_post"] + b_out @ direction, sums["mlp_out"], rtol=1e-3, atol=1e-4
    )
    torch.testing.assert_close(
        sums["attn_z"] + b_o @ direction, sums["attn_out"], rtol=1e-3, atol=1e-4
    )


def test_unaligned_pairs(tiny, toy_pairs):
    pairs = [*toy_pairs[:2], ("the dog runs", "the dog ran")]
    with pytest.raises(LocalizeError, match=r"Pair 2 does not align.*unaligned='drop'"):
        unit_attribution(tiny, "resid_post", pairs, progress=False)
    att = unit_attribution(tiny, "resid_post", pairs, unaligned="drop", progress=False)
    assert att.record["n_dropped_unaligned"] == 1 and att.record["n_pairs"] == 2
    with pytest.raises(LocalizeError, match="No pair has sentences of the same token length"):
        unit_attribution(tiny, "resid_post", pairs[2:], unaligned="drop", progress=False)
    with pytest.raises(LocalizeError, match="are the same text"):
        unit_attribution(tiny, "resid_post", [("same text", "same text")], progress=False)
    with pytest.raises(LocalizeError, match="same tokens"):  # two unknown characters
        unit_attribution(tiny, "resid_post", [("a \u00e9 b", "a \u00e8 b")], progress=False)


def test_bad_input(tiny, toy_pairs):
    with pytest.raises(LocalizeError, match="Unknown site 'mlp_in'"):
        unit_attribution(tiny, "mlp_in", toy_pairs, progress=False)
    missing = Site("gate", "blocks.{layer}.mlp.hook_gate_missing", ("d_mlp",), "not here")
    with pytest.raises(
        LocalizeError, match="This model has no hook 'blocks.0.mlp.hook_gate_missing'"
    ):
        unit_attribution(tiny, missing, toy_pairs, progress=False)
    with pytest.raises(LocalizeError, match="Unknown task 'syntax'"):
        unit_attribution(tiny, "resid_post", "syntax", progress=False)
    with pytest.raises(LocalizeError, match="'arithmetic' is not made of minimal pairs"):
        unit_attribution(tiny, "resid_post", "arithmetic", progress=False)
    with pytest.raises(LocalizeError, match="Task 'blimp' needs blimp="):
        unit_attribution(tiny, "resid_post", "blimp", progress=False)
    with pytest.raises(LocalizeError, match="sentence_good"):
        unit_attribution(tiny, "resid_post", [{"good": "a", "bad": "b"}], progress=False)
    with pytest.raises(LocalizeError, match="n_units must be between 2 and 96"):
        check_attribution(tiny, "resid_post", toy_pairs, n_units=500, progress=False)
    with pytest.raises(LocalizeError, match="checks 'patch' or 'zero'"):
        check_attribution(tiny, "resid_post", toy_pairs, kind="dla", progress=False)


def test_save_and_load(tiny, make_tiny, tmp_path, toy_pairs):
    att = unit_attribution(tiny, "mlp_post", toy_pairs, n_items=3, progress=False)
    folder = att.save(tmp_path / "att")
    assert {p.name for p in folder.iterdir()} == {
        "attribution.safetensors", "attribution.csv", "items.csv", "record.json",
    }  # fmt: skip
    back = Attribution.load(folder, tiny)
    assert back.site == "mlp_post" and len(back.items) == 3
    for name, tensor in att.scores.items():
        torch.testing.assert_close(back.scores[name], tensor, equal_nan=True)
    with pytest.raises(LocalizeError, match="already exists"):
        att.save(folder)
    with pytest.raises(LocalizeError, match="computed for model 'tiny', not 'other'"):
        Attribution.load(folder, make_tiny(name="other"))
    with pytest.raises(LocalizeError, match="not an attribution"):
        Attribution.load(tmp_path)


@pytest.mark.model
def test_attribution_patching_tracks_real_patching_on_the_default_model(default_model):
    check = check_attribution(default_model, "resid_post", n_units=24, n_items=16, progress=False)
    assert check.n_pairs == 16
    assert check.pearson > 0.3 and check.spearman > 0.3, check.frame


@pytest.mark.model
def test_direct_logit_attribution_decomposes_the_logit_difference(default_model):
    # the last residual stream is the unembedding's input: its units' direct effects sum to
    # the logit difference (SmolLM2 has no biases and an RMS norm, whose scale is frozen)
    att = unit_attribution(default_model, "resid_post", n_items=8, progress=False)
    assert att.record["n_dropped_unaligned"] > 0  # the built-in suite keeps aligned pairs
    total = float(att.scores["dla_mean"][-1].sum())
    assert total == pytest.approx(att.items["logit_diff"].mean(), rel=1e-3, abs=1e-3)
    # neurons and head values reach the residual stream only through W_out and W_O
    sums = {
        site: unit_attribution(default_model, site, n_items=8, progress=False).scores["dla_mean"]
        for site in ("mlp_post", "mlp_out", "attn_z", "attn_out")
    }
    torch.testing.assert_close(
        sums["mlp_post"].sum(1), sums["mlp_out"].sum(1), rtol=1e-3, atol=1e-3
    )
    torch.testing.assert_close(sums["attn_z"].sum(1), sums["attn_out"].sum(1), rtol=1e-3, atol=1e-3)


def test_tokenizer_without_bos_and_texts_past_the_context(make_tiny, tiny, toy_pairs):
    model = make_tiny(name="no-bos")
    model.tokenizer.bos_token = None
    with pytest.raises(LocalizeError, match="no BOS token.*tokenizer.bos_token"):
        unit_attribution(model, "resid_post", toy_pairs, progress=False)
    long = ("a" * 70, "b" * 70)
    with pytest.raises(LocalizeError, match="longer than the model's context"):
        unit_attribution(tiny, "resid_post", [long], progress=False)
