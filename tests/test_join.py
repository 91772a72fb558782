"""Selectivity joined with attribution and ablation, on a tiny random model."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from tl_localize import (
    LocalizeError,
    check_attribution,
    compare_ablation,
    evaluate,
    join,
    join_summary,
    localize,
    overlap,
    plot_join,
    plot_join_layers,
    unit_attribution,
)
from tl_localize.join import top_attribution_units


@pytest.fixture(scope="module")
def loc(tiny, toy_contrast):
    return localize(tiny, toy_contrast, top=12, progress=False)


@pytest.fixture(scope="module")
def pairs(toy_pairs):
    return toy_pairs[:4]


@pytest.fixture(scope="module")
def att(tiny, pairs):
    return unit_attribution(tiny, "resid_post", pairs, progress=False)


def test_join_has_a_row_per_unit(loc, att):
    frame = join(loc, att)
    assert len(frame) == 96 and frame["selected"].sum() == 12
    assert {"t", "q", "magnitude", "patch_abs", "zero_mean", "dla_mean"} <= set(frame.columns)
    row = frame.iloc[40]
    assert row["t"] == pytest.approx(float(loc.stats["t"][1, 8]))
    assert row["patch_abs"] == pytest.approx(float(att.scores["patch_abs"][1, 8]))


def test_summary_matches_direct_computation(loc, att):
    frame = join(loc, att)
    summary = join_summary(frame, score="patch_abs")
    assert list(summary["scope"]) == ["all", 0, 1, 2]
    overall = summary.iloc[0]
    rho, p = sps.spearmanr(frame["t"], frame["patch_abs"])
    assert overall["spearman"] == pytest.approx(rho) and overall["p_spearman"] == pytest.approx(p)
    top = top_attribution_units(frame, loc.units, "patch_abs")
    assert len(top) == 12
    # the 12 units with the largest score are exactly the top set
    assert (
        frame["patch_abs"][top.mask.reshape(-1).numpy()].min()
        >= frame["patch_abs"].nlargest(12).min()
    )
    reference = overlap(loc.units, top)
    assert overall["overlap"] == reference.count
    shared = top.mask & loc.units.mask
    assert overall["overlap_indices"] == len(set(shared.nonzero()[:, 1].tolist()))
    assert overall["expected"] == pytest.approx(reference.expected)
    assert overall["p_overlap"] == pytest.approx(reference.p_value)
    layers = summary.iloc[1:]
    assert layers["overlap"].sum() == overall["overlap"]
    assert layers["n_selected"].sum() == 12 and layers["n_top_attribution"].sum() == 12
    # a _mean score is compared by its absolute value
    by_mean = join_summary(frame, score="zero_mean").iloc[0]
    rho_abs = sps.spearmanr(frame["t"], frame["zero_mean"].abs())[0]
    assert by_mean["spearman"] == pytest.approx(rho_abs)
    # dla is NaN before the last layer: those layers have no correlation and no top units
    dla = join_summary(frame, score="dla_abs")
    assert dla.iloc[1:3]["spearman"].isna().all() and dla.iloc[1:3]["n_top_attribution"].eq(0).all()
    with pytest.raises(LocalizeError, match="Unknown attribution score"):
        join_summary(frame, score="t")


def test_join_with_group_and_single_unit_ablation(tiny, loc, att, pairs):
    def task(model, **kw):
        return evaluate.minimal_pairs(model, pairs, **kw)

    group = compare_ablation(
        tiny, loc, [("pairs", task)], n_random=1, match="uniform", progress=False
    )
    frame = join(loc, att, group)
    column = frame["group_change_pct_pairs"]
    assert column.notna().sum() == 12 and column[frame["selected"]].notna().all()
    table = group.table
    selected_change = table.loc[table["set"] == "selected", "change_pct"].iloc[0]
    assert np.allclose(column.dropna(), selected_change)

    check = check_attribution(tiny, "resid_post", pairs, n_units=6, n_items=4, progress=False)
    frame = join(loc, att, check)
    assert frame["single_patch"].notna().sum() == 6
    merged = frame.dropna(subset=["single_patch"]).set_index(["layer", "unit"])["single_patch"]
    expected = check.frame.set_index(["layer", "unit"])["actual"]
    pd.testing.assert_series_equal(merged.sort_index(), expected.sort_index(), check_names=False)
    with pytest.raises(LocalizeError, match="ablation= takes"):
        join(loc, att, pd.DataFrame({"x": [1]}))


def test_join_refuses_other_units(tiny, loc, pairs):
    other = unit_attribution(tiny, "mlp_post", pairs, progress=False)
    with pytest.raises(LocalizeError, match="do not describe the same units"):
        join(loc, other)


def test_plots(loc, att):
    frame = join(loc, att)
    fig = plot_join(frame)
    assert fig.axes[0].get_xlabel() == "selectivity (Welch t)"
    assert len(fig.axes[0].collections[0].get_offsets()) == 96
    fig = plot_join_layers(join_summary(frame))
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == 3
