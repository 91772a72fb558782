"""How far to trust a localization: reliability, held-out selectivity, significance,
resample ablation, intervals and verdicts, model checks (fast tier: tiny models and
synthetic data; every statistic against an independent computation)."""

import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps

import tl_localize.activations as activations
from tl_localize import (
    Contrast,
    LocalizeError,
    Units,
    ablation_hooks,
    check_model,
    compare_ablation,
    evaluate,
    localize,
    reliability,
)
from tl_localize.ablation import resample_pool
from tl_localize.compare import verdicts
from tl_localize.reliability import LocalizerPower, dice, jaccard, split_half
from tl_localize.stats import (
    bootstrap_indices,
    mcnemar_p,
    paired_permutation_p,
    percentile_interval,
    permutation_max_t,
)


# -- overlap measures and split-half reliability ----------------------------------------
def test_dice_and_jaccard_on_hand_made_masks():
    a = torch.tensor([[True, True, False, False], [True, False, False, False]])
    b = torch.tensor([[True, False, True, False], [True, False, False, True]])
    assert dice(a, b) == pytest.approx(2 * 2 / (3 + 4))
    assert jaccard(a, b) == pytest.approx(2 / 5)
    assert dice(a, a) == 1.0 and jaccard(a, ~a) == 0.0
    assert math.isnan(dice(a & False, b & False))


def _planted(n_units=200, n_planted=10, n=40, shift=3.0, seed=0):
    rng = np.random.default_rng(seed)
    pos = rng.normal(size=(n, 2, n_units // 2))
    neg = rng.normal(size=(n, 2, n_units // 2))
    pos[:, 1, :n_planted] += shift  # planted selective units: layer 1, units 0..9
    return torch.from_numpy(pos).float(), torch.from_numpy(neg).float()


def test_split_half_finds_planted_units_and_chance_on_shuffled_labels():
    pos, neg = _planted()
    frame = split_half(pos, neg, top=10, n_splits=5, absolute=False)
    whole = frame[frame["scope"] == "all"]
    assert len(whole) == 5 and (whole["n_a"] == 10).all()
    assert whole["dice"].min() > 0.9 and whole["t_corr"].mean() > 0.3
    assert whole["chance_dice"].iloc[0] == pytest.approx(10 / 200)
    layer1 = frame[frame["scope"] == 1]
    assert (layer1["n_a"] == 10).all() and (frame[frame["scope"] == 0]["n_a"] == 0).all()
    # label-shuffled stimuli: the same distribution in both conditions, agreement at chance
    rng = np.random.default_rng(1)
    both = torch.cat([pos, neg])[torch.from_numpy(rng.permutation(80))]
    shuffled = split_half(both[:40], both[40:], top=10, n_splits=20, absolute=False)
    overall = shuffled[shuffled["scope"] == "all"]
    assert overall["dice"].mean() < 0.2 and abs(overall["t_corr"].mean()) < 0.2


def test_reliability_runs_the_model_once(tiny, toy_contrast, monkeypatch):
    calls = []
    real = activations.run_pooled
    monkeypatch.setattr(activations, "run_pooled", lambda *a, **k: calls.append(1) or real(*a, **k))
    frame = reliability(tiny, toy_contrast, top=6, n_splits=7, progress=False)
    assert len(calls) == 2  # one batch per condition, whatever the number of splits
    assert frame["split"].nunique() == 7 and set(frame["model"]) == {"tiny"}
    assert frame[frame["scope"] == "all"]["dice"].between(0, 1).all()
    with pytest.raises(LocalizeError, match="at least 4 per condition"):
        small = Contrast("s", {"a": ["x y", "y z", "z x"], "b": ["q", "w", "e"]}, "a", "b")
        reliability(tiny, small, top=3, progress=False)
    with pytest.raises(LocalizeError, match="top='fdr:0.05'.*not a significance threshold"):
        reliability(tiny, toy_contrast, top="fdr:0.05", progress=False)
    with pytest.raises(LocalizeError, match="unknown settings"):
        reliability(tiny, toy_contrast, top=6, holdout=0.5, progress=False)


# -- the localizer's power: agreement by the number of stimuli ---------------------------
def test_split_half_sizes_draw_nested_disjoint_sets_and_match_scipy():
    pos, neg = _planted(n=40)
    # size = half of each condition is the plain split-half design
    pd.testing.assert_frame_equal(
        split_half(pos, neg, top=10, n_splits=3, absolute=False, size=20),
        split_half(pos, neg, top=10, n_splits=3, absolute=False),
    )
    frame = split_half(pos, neg, top=10, n_splits=2, seed=5, absolute=False, size=7)
    row = frame[(frame["scope"] == "all") & (frame["split"] == 1)].iloc[0]
    rng = np.random.default_rng(5)  # the same draws, independently: split 1 follows split 0
    orders = [rng.permutation(40) for _ in range(4)][2:]
    t = []
    for part in (slice(0, 7), slice(7, 14)):
        a, b = pos[orders[0][part]].double().numpy(), neg[orders[1][part]].double().numpy()
        t.append(sps.ttest_ind(a, b, equal_var=False).statistic.reshape(-1))
    assert row["t_corr"] == pytest.approx(sps.pearsonr(t[0], t[1]).statistic, abs=1e-6)
    assert row["t_spearman"] == pytest.approx(sps.spearmanr(t[0], t[1]).statistic, abs=1e-6)
    top_a, top_b = set(np.argsort(-t[0])[:10]), set(np.argsort(-t[1])[:10])
    assert row["overlap"] == len(top_a & top_b)
    with pytest.raises(LocalizeError, match="at most 20 each"):
        split_half(pos, neg, top=10, size=21)


def test_power_curve_rises_with_the_number_of_stimuli(tiny, toy_contrast, monkeypatch):
    pos, neg = _planted(n=64, shift=1.2)
    from tl_localize.reliability import _power_table

    parts = []
    for n in (4, 8, 16, 32):
        part = split_half(pos, neg, top=10, n_splits=20, absolute=False, size=n)
        parts.append(part[part["scope"] == "all"].assign(size=n))
    table = _power_table(pd.concat(parts, ignore_index=True))
    assert table["dice"].is_monotonic_increasing and table["t_corr"].is_monotonic_increasing
    assert table["dice"].iloc[-1] > 0.8 > table["dice"].iloc[0]
    assert ((table["dice_low"] <= table["dice"]) & (table["dice"] <= table["dice_high"])).all()
    assert np.allclose(table["chance_dice"], 10 / 200)
    # on a model: one pass over the stimuli, whatever the sizes and splits
    calls = []
    real = activations.run_pooled
    monkeypatch.setattr(activations, "run_pooled", lambda *a, **k: calls.append(1) or real(*a, **k))
    power = reliability(tiny, toy_contrast, top=6, sizes=[2, 3, 4], n_splits=8, progress=False)
    assert len(calls) == 2
    assert power.table["size"].tolist() == [2, 3, 4] and (power.table["n_splits"] == 8).all()
    assert len(power.splits) == 3 * 8 and np.allclose(power.table["chance_dice"], 6 / 96)
    first = power.splits[power.splits["size"] == 4]
    assert power.table.iloc[2]["dice"] == pytest.approx(first["dice"].mean())
    assert power.table.iloc[2]["dice_low"] == pytest.approx(np.percentile(first["dice"], 2.5))
    n = power.reached()
    sentence = power.summary()
    if n is None:
        assert "none of the sizes" in sentence and "more than 4 per condition" in sentence
    else:
        assert f"from {n} stimuli per condition" in sentence
    easy = LocalizerPower(power.table, power.splits, power.settings, target=0.0)
    assert power.reached(target=0.0) == easy.reached() == 2
    assert "reach a split-half Dice of 0 from 2 stimuli per condition" in easy.summary()
    assert "Localizer power" in power._repr_html_() and power.plot().axes
    assert reliability(tiny, toy_contrast, top=6, sizes="auto", progress=False).table[
        "size"
    ].tolist() == [4]  # 8 stimuli per condition: two disjoint sets of 4
    for bad, message in [
        ([5], "at most 4 each"),
        ([1, 2], "at least 2"),
        ([], "non-empty list"),
        ("some", "'auto'"),
    ]:
        with pytest.raises(LocalizeError, match=message):
            reliability(tiny, toy_contrast, top=6, sizes=bad, progress=False)
    with pytest.raises(LocalizeError, match="n_splits"):
        reliability(tiny, toy_contrast, top=6, sizes=[2], n_splits=1, progress=False)


@pytest.mark.model
def test_power_of_the_language_localizer_on_the_default_model(default_model):
    power = reliability(default_model, "language", sizes="auto", progress=False)
    table = power.table
    assert table["size"].tolist() == [5, 10, 20, 40, 80, 120]
    assert (table["dice"] > 5 * table["chance_dice"]).iloc[2:].all()
    for later in range(1, len(table)):  # monotone within the intervals
        for earlier in range(later):
            assert table["dice"].iloc[later] >= table["dice_low"].iloc[earlier]
            assert table["t_corr"].iloc[later] >= table["t_corr_low"].iloc[earlier]
    sentence = power.summary()
    assert re.search(r"\d+ stimuli per condition", sentence), sentence
    assert power.reached() is None or power.reached() in table["size"].tolist()
    print(table.to_string(), sentence, sep="\n")


# -- held-out selectivity -----------------------------------------------------------------
def test_holdout_measures_the_selected_units_on_unseen_stimuli(tiny, toy_contrast):
    loc = localize(tiny, toy_contrast, top=6, holdout=0.5, seed=3, progress=False)
    index = loc.record["holdout"]["heldout_index"]
    assert {len(v) for v in index.values()} == {4}
    held = Contrast(
        "held",
        {c: [toy_contrast.conditions[c][i] for i in index[c]] for c in ("words", "junk")},
        "words",
        "junk",
        pooling="mean",
    )
    direct = localize(tiny, held, top=6, progress=False)
    torch.testing.assert_close(loc.stats["heldout_t"], direct.stats["t"], rtol=1e-5, atol=1e-5)
    frame = loc.holdout.set_index("sample")
    assert frame.loc["held_out", "n_positive"] == 4 and frame.loc["in_sample", "n_units"] == 6
    assert frame.loc["held_out", "mean_t"] == pytest.approx(
        float(direct.stats["t"][loc.units.mask].mean())
    )
    # selection bias: the selected units look better where they were selected
    assert frame.loc["in_sample", "mean_t"] >= frame.loc["held_out", "mean_t"]
    assert "held-out" in loc.summary()
    for bad in (0, 1, 1.5, -0.2, True):
        with pytest.raises(LocalizeError, match="holdout="):
            localize(tiny, toy_contrast, top=6, holdout=bad, progress=False)
    with pytest.raises(LocalizeError, match="each part needs at least 2"):
        localize(tiny, toy_contrast, top=6, holdout=0.9, progress=False)


# -- selection by significance -----------------------------------------------------------
def test_fdr_selection(tiny, toy_contrast):
    loc = localize(tiny, toy_contrast, top="fdr:0.05", progress=False)
    expected = (loc.stats["q"] < 0.05) & (loc.stats["t"] > 0)
    assert torch.equal(loc.units.mask, expected)
    assert loc.record["selection"]["n_passed"] == int(expected.sum())
    assert loc.record["selection"]["method"] == "fdr"
    same = Contrast(
        "same", {"a": toy_contrast.positive, "b": toy_contrast.positive[::-1]}, "a", "b"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.warns(UserWarning, match="selects an empty set"):
            empty = localize(tiny, same, top="fdr:0.05", progress=False)
    assert len(empty.units) == 0 and empty.record["selection"]["n_passed"] == 0


def test_max_t_threshold_against_brute_force():
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.normal(size=(7, 12)))
    b = torch.from_numpy(rng.normal(0.5, 2, size=(6, 12)))
    orders = torch.stack([torch.from_numpy(rng.permutation(13)) for _ in range(25)])
    null = permutation_max_t(a, b, n_permutations=25, orders=orders)
    pooled = torch.cat([a, b]).numpy()
    for k, order in enumerate(orders.numpy()):
        t = sps.ttest_ind(pooled[order[:7]], pooled[order[7:]], equal_var=False).statistic
        assert null[k].item() == pytest.approx(t.max(), rel=1e-9)
    again = permutation_max_t(a, b, n_permutations=25, seed=4)
    assert torch.equal(again, permutation_max_t(a, b, n_permutations=25, seed=4))


def test_perm_selection(tiny, toy_contrast):
    loc = localize(tiny, toy_contrast, top="perm:0.05", n_permutations=50, progress=False)
    selection = loc.record["selection"]
    assert selection["method"] == "perm" and selection["n_permutations"] == 50
    assert torch.equal(loc.units.mask, loc.stats["t"] > selection["threshold"])
    assert selection["n_passed"] == len(loc.units)
    for top, message in (("fdr:2", "must be a number in"), ("perm:x", "must be a number in"),
                         ("bonf:0.05", "significance selection")):  # fmt: skip
        with pytest.raises(LocalizeError, match=message):
            localize(tiny, toy_contrast, top=top, progress=False)
    with pytest.raises(LocalizeError, match="n_permutations must be a whole number of at least 20"):
        localize(tiny, toy_contrast, top="perm:0.05", n_permutations=10, progress=False)


# -- resample ablation -------------------------------------------------------------------
def test_resample_ablation(tiny):
    mask = torch.zeros(3, 32, dtype=torch.bool)
    mask[0, :8] = mask[2, 3:9] = True
    units = Units(mask, "resid_post", "tiny")
    text = "the dogs run far"
    intact = evaluate.perplexity(tiny, [text], progress=False)["nll"][0]
    # the reference set is the evaluated text itself: every draw returns its own activations
    own = resample_pool(tiny, [text], units, progress=False)
    hooks = ablation_hooks(units, method="resample", pool=own)
    same = evaluate.perplexity(tiny, [text], hooks=hooks, progress=False)["nll"][0]
    assert same == pytest.approx(intact, abs=1e-6)
    # other texts change the outputs; the draws are seeded
    others = resample_pool(tiny, ["a cat sat", "zzq vbk plo fwe", "my owl"], units, progress=False)
    runs = [
        evaluate.perplexity(
            tiny, [text], hooks=ablation_hooks(units, method="resample", pool=others, seed=s),
            progress=False,
        )["nll"][0]
        for s in (0, 0, 1)
    ]  # fmt: skip
    assert runs[0] != pytest.approx(intact, abs=1e-4) and runs[0] == runs[1]
    with pytest.raises(LocalizeError, match="needs a reference set"):
        ablation_hooks(units, method="resample")
    wider = units.with_mask(torch.ones(3, 32, dtype=torch.bool))
    with pytest.raises(LocalizeError, match="does not hold unit"):
        ablation_hooks(wider, method="resample", pool=own)
    with pytest.raises(LocalizeError, match="non-empty list of reference texts"):
        resample_pool(tiny, [], units)


# -- intervals and verdicts --------------------------------------------------------------
def test_bootstrap_interval_against_a_plain_loop():
    rng = np.random.default_rng(0)
    values = rng.random(30) < 0.6
    index = bootstrap_indices(30, 200, seed=5)
    vectorised = percentile_interval(values[index].mean(1))
    loop_rng, means = np.random.default_rng(5), []
    for _ in range(200):
        means.append(values[loop_rng.integers(0, 30, 30)].mean())
    assert vectorised == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))


def test_paired_permutation_p_against_scipy():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=10), rng.normal(0.6, 1, size=10)
    for alternative in ("less", "greater", "two-sided"):
        ref = sps.permutation_test(
            (x, y), lambda a, b, axis: np.mean(a - b, axis=axis), permutation_type="samples",
            alternative=alternative, n_resamples=10_000,
        )  # fmt: skip
        ours = paired_permutation_p(x - y, alternative=alternative, n_permutations=10_000)
        assert ours == pytest.approx(ref.pvalue, rel=1e-12)  # exact: 2**10 sign patterns
    x, y = rng.normal(size=60), rng.normal(0.3, 1, size=60)
    ref = sps.permutation_test(
        (x, y), lambda a, b, axis: np.mean(a - b, axis=axis), permutation_type="samples",
        alternative="less", n_resamples=20_000, rng=0,
    )  # fmt: skip
    ours = paired_permutation_p(x - y, alternative="less", n_permutations=20_000)
    assert abs(ours - ref.pvalue) < 0.01  # randomized: equal up to Monte Carlo error


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([1, 1, 1, 0, 0], [1, 1, 0, 0, 0], sps.binomtest(1, 1).pvalue),
        ([1] * 8 + [0] * 2, [0] * 8 + [1] * 2, sps.binomtest(8, 10).pvalue),
        ([1, 0, 1, 0], [1, 0, 1, 0], 1.0),
        ([1] * 20 + [0] * 5, [0] * 3 + [1] * 17 + [1] * 5, sps.binomtest(3, 8).pvalue),
    ],
)
def test_mcnemar_against_scipy_exact_binomial(a, b, expected):
    assert mcnemar_p(np.array(a, bool), np.array(b, bool)) == pytest.approx(expected)


def test_verdicts_on_known_outcomes():
    n = 40
    table = pd.DataFrame(
        [
            {"model": "m", "task": "t", "metric": "accuracy", "method": "zero", "fraction": 0.0,
             "set": "intact", "match": None, "seed": None, "change_pct": 0.0},
            {"model": "m", "task": "t", "metric": "accuracy", "method": "zero", "fraction": 0.01,
             "set": "selected", "match": None, "seed": None, "change_pct": -100.0},
        ]
        + [
            {"model": "m", "task": "t", "metric": "accuracy", "method": "zero", "fraction": 0.01,
             "set": "random", "match": m, "seed": s,
             "change_pct": 0.0 if m == "uniform" else -100.0}
            for m in ("uniform", "magnitude") for s in range(3)
        ]
    )  # fmt: skip
    found = [np.ones(n, bool), np.zeros(n, bool)]
    found += [np.ones(n, bool)] * 3 + [np.zeros(n, bool)] * 3
    frame = verdicts(table, found, {"t": True}, n_boot=200)
    rows = frame.set_index("match")
    assert rows.loc["uniform", "verdict"] == "specific" and rows.loc["uniform", "p_value"] < 1e-3
    assert rows.loc["uniform", "difference_pct"] == pytest.approx(-100.0)
    assert rows.loc["magnitude", "verdict"] == "not specific"
    assert rows.loc["magnitude", "p_value"] == 1.0 and rows.loc["magnitude", "n_seeds"] == 3


def test_compare_ablation_intervals_and_bad_input(tiny, toy_contrast, toy_pairs):
    loc = localize(tiny, toy_contrast, top=6, progress=False)
    task = ("pairs", lambda model, **kw: evaluate.minimal_pairs(model, toy_pairs, **kw))
    result = compare_ablation(tiny, loc, [task], n_random=2, n_boot=200, progress=False)
    table = result.table
    ok = table["change_low"].isna() | (
        (table["change_low"] <= table["change_pct"] + 1e-9)
        & (table["change_pct"] <= table["change_high"] + 1e-9)
    )
    assert ok.all() and len(result.verdicts) == 2
    # a random model on 5 pairs: 40% [0, 80]: its interval reaches the floor
    assert result.summary().startswith("pairs is at chance for the intact model")
    assert set(result.verdicts["verdict"]) == {"at chance"}
    again = compare_ablation(tiny, loc, [task], n_random=2, n_boot=200, progress=False)
    pd.testing.assert_frame_equal(table, again.table)  # seeded
    resampled = compare_ablation(
        tiny, loc, [task], n_random=1, method="resample", reference=["a cat sat", "we go"],
        n_boot=200, progress=False,
    )  # fmt: skip
    assert set(resampled.table["method"]) == {"resample"}
    quiet = compare_ablation(
        tiny, loc, [task], n_random=2, match=["layer", "least_active"], n_boot=200,
        progress=False,
    )  # fmt: skip
    assert quiet.verdicts["match"].tolist() == ["layer", "least_active"]
    assert (quiet.verdicts["n_seeds"] == 2).all() and quiet.verdicts["verdict"].notna().all()
    least = quiet.table[quiet.table["match"] == "least_active"]
    magnitude = loc.stats["magnitude"]
    for seed in (0, 1):
        drawn = loc.units.random_like(seed, "least_active", magnitude)
        assert len(drawn) == least["n_units"].iloc[seed] == 6
        assert magnitude[drawn.mask].mean() < magnitude[loc.units.mask].mean()
    # the tiny model is at chance on these pairs: the summary says so instead of an effect
    summary = quiet.summary()
    assert set(quiet.verdicts["verdict"]) == {"at chance"} and "is at chance" in summary
    with pytest.raises(LocalizeError, match="match='least_active' needs activation magnitudes"):
        compare_ablation(tiny, loc.units, [task], match="least_active", progress=False)
    with pytest.raises(LocalizeError, match="n_boot must be a whole number of at least 100"):
        compare_ablation(tiny, loc, [task], n_boot=50, progress=False)
    with pytest.raises(LocalizeError, match="method='resample' needs reference="):
        compare_ablation(tiny, loc, [task], method="resample", progress=False)


# -- model checks --------------------------------------------------------------------------
def test_check_model_passes_on_tiny_models_and_fails_on_broken_wiring(tiny, make_tiny):
    frame = check_model(tiny, generation=False)
    assert frame["passed"].all(), frame
    assert {"pooled_batched_vs_single@resid_post", "empty_ablation_is_identity",
            "ablation_changes_logits", "padding_leaves_logits"} <= set(frame["check"])  # fmt: skip
    assert frame.set_index("check").loc["logits_vs_transformers", "status"] == "skip"
    broken = make_tiny(name="broken")

    def leak(acts, hook):  # a wiring bug: each text's activations leak into the others
        return acts + acts.mean(0, keepdim=True)

    broken.blocks[1].hook_resid_post.add_hook(leak)
    failed = check_model(broken, generation=False).set_index("check")
    assert failed.loc["pooled_batched_vs_single@resid_post", "status"] == "fail"
    assert failed.loc["pooled_batched_vs_single@resid_post", "value"] > 1e-3
    assert failed.loc["padding_leaves_logits", "status"] == "fail"
    # localize runs the cheap part itself: recorded when it passes, an error when it fails
    contrast = Contrast("c", {"a": ["the cat", "a dog ran", "we go far"], "b": ["zq", "vbk x",
                        "qqp lo"]}, "a", "b", pooling="mean")  # fmt: skip
    good = localize(tiny, contrast, top=3, progress=False)
    assert [c["check"] for c in good.record["checks"]] == ["pooled_batched_vs_single@resid_post"]
    assert good.record["checks"][0]["passed"]
    with pytest.raises(LocalizeError, match=r"batched pooling differs from one text at a time by"):
        localize(broken, contrast, top=3, progress=False)
    assert localize(broken, contrast, top=3, check=False, progress=False).record["checks"] == []
