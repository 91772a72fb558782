import json
import warnings

import numpy as np
import pytest
import torch
from scipy import stats as sps

from tl_localize import Contrast, Localization, LocalizeError, localize
from tl_localize.activations import pooled_activations
from tl_localize.localize import band_positions, parse_band, resolve_top, select_band, select_top

POS = [f"the {w} sat on a mat" for w in ["cat", "dog", "owl", "fox", "hen", "ram", "cow", "elk"]]
NEG = [f"zq{w}x vbk qqp" for w in ["ab", "cd", "ef", "gh", "ij", "kl", "mn", "op"]]
CONTRAST = Contrast("toy", {"words": POS, "junk": NEG}, "words", "junk", pooling="mean")


def test_t_values_match_scipy_on_stored_activations(tiny):
    loc = localize(tiny, CONTRAST, top=10, progress=False)
    hooks = [f"blocks.{layer}.hook_resid_post" for layer in range(3)]
    pos = pooled_activations(tiny, POS, hooks, pooling="mean", batch_size=1)
    neg = pooled_activations(tiny, NEG, hooks, pooling="mean", batch_size=1)
    a = torch.stack([pos[h] for h in hooks], 1).abs().double().numpy()
    b = torch.stack([neg[h] for h in hooks], 1).abs().double().numpy()
    ref = sps.ttest_ind(a, b, axis=0, equal_var=False)
    np.testing.assert_allclose(loc.stats["t"].numpy(), ref.statistic, rtol=1e-4, atol=1e-4)
    top10 = np.argsort(-ref.statistic.reshape(-1))[:10]
    assert set(loc.units.mask.reshape(-1).nonzero().flatten().tolist()) == set(top10.tolist())
    frame = loc.to_frame()
    assert len(frame) == 3 * 32 and frame["selected"].sum() == 10
    assert list(frame.columns[:5]) == ["model", "contrast", "site", "layer", "unit"]
    assert {"t", "p", "q", "d", "magnitude"} <= set(frame.columns)
    assert (frame["q"] >= frame["p"] - 1e-12).all()
    # the per-condition means, long: one row per unit and condition
    long = loc.condition_frame()
    assert len(long) == 2 * 96 and set(long["condition"]) == {"words", "junk"}
    words = long[long["condition"] == "words"].set_index(["layer", "unit"])["abs_mean"]
    np.testing.assert_allclose(words.to_numpy(), a.mean(0).reshape(-1), rtol=1e-4, atol=1e-5)


def test_signed_and_per_layer(tiny):
    loc = localize(tiny, CONTRAST, top=0.1, absolute=False, selection="per_layer", progress=False)
    assert loc.units.per_layer()["count"].tolist() == [3, 3, 3]
    assert loc.config.absolute is False
    diff = loc.stats["mean_positive"] - loc.stats["mean_negative"]
    assert (torch.sign(loc.stats["t"]) == torch.sign(diff)).all()
    with pytest.raises(KeyError, match="mean_words"):  # 0.2's name by condition, removed
        loc.stats["mean_words"]


def test_mlp_site(tiny):
    loc = localize(tiny, CONTRAST, site="mlp_post", top=5, progress=False)
    assert loc.units.mask.shape == (3, 64) and len(loc.units) == 5
    assert loc.units.site == "mlp_post"


def test_resolve_top():
    assert resolve_top(0.01, 17280) == 172
    assert resolve_top("1%", 17280) == 172
    assert resolve_top("172", 17280) == 172
    assert resolve_top(5, 10) == 5
    for bad, message in [
        (0, "a count must be at least 1"),
        (11, "between 1 and 10"),
        (-0.5, r"not a fraction in \(0, 1\]"),
        (1.5, r"not a fraction in \(0, 1\]"),
        (0.001, "selects none"),
        ("lots", "Cannot read top"),
    ]:
        with pytest.raises(LocalizeError, match=message):
            resolve_top(bad, 10)


def test_select_top_ignores_nan():
    scores = torch.tensor([[float("nan"), 1.0], [3.0, 2.0]])
    assert select_top(scores, 2).tolist() == [[False, False], [True, True]]


def test_band_positions_round_as_top_does():
    for n in (96, 576, 17280, 17281, 100):
        for f in (0.01, 0.1, 0.125, 0.5):
            k = resolve_top(f, n) if int(f * n) >= 1 else None
            if k is None:
                continue
            assert band_positions((0, f), n) == (0, k)  # (0, f) is top=f
            assert band_positions((1 - f, 1.0), n) == (n - k, n)  # the other end, same size
    assert band_positions((0.8, 0.9), 100) == (80, 90)  # (0.9 - 0.8) * 100 < 10 in floats
    assert band_positions(parse_band("80-90%"), 17280) == (13824, 15552)
    with pytest.raises(LocalizeError, match="selects none"):
        band_positions((0.5, 0.501), 96)


def test_parse_band_spellings_and_mistakes():
    assert parse_band("80-90%") == parse_band("80%-90%") == parse_band("0.8-0.9") == (0.8, 0.9)
    assert parse_band((0.99, 1)) == (0.99, 1.0) and parse_band(np.array([0, 0.5]).tolist())
    for bad in ("90-80%", "0.5", "1-2", (0.2, 0.2), (-0.1, 0.5), (0.5, 1.1), ("a", 1), 0.5,
                (True, 1), "nan-1", (0.1, 0.2, 0.3)):  # fmt: skip
        with pytest.raises(LocalizeError, match="band="):
            parse_band(bad)


def test_select_band_ranks_by_t_with_nan_last():
    scores = torch.tensor([[5.0, float("nan"), 1.0, 4.0], [3.0, 2.0, 0.0, -1.0]])
    assert select_band(scores, (0, 0.25)).tolist() == select_top(scores, 2).tolist()
    low = select_band(scores, (0.75, 1.0))  # ranks 6 and 7: -1 and the NaN
    assert low.tolist() == [[False, True, False, False], [False, False, False, True]]
    middle = select_band(scores, (0.25, 0.5))  # ranks 2, 3: t 3 and 2
    assert middle.tolist() == [[False, False, False, False], [True, True, False, False]]
    per_layer = select_band(scores, (0.5, 1.0), "per_layer")
    assert per_layer.tolist() == [[False, True, True, False], [False, False, True, True]]


def test_bands_in_localize_and_select(tiny, tmp_path):
    loc = localize(tiny, CONTRAST, band=(0.9, 1.0), progress=False)
    top = localize(tiny, CONTRAST, top=0.1, progress=False)
    assert len(loc.units) == len(top.units) == 9 and len(loc.units & top.units) == 0
    t = loc.stats["t"]
    assert float(t[loc.units.mask].max()) <= float(t[~loc.units.mask].min())  # the lowest t
    assert loc.record["selection"]["method"] == "band" and loc.config.top is None
    assert "band 90-100%" in loc.summary() and "band=0.9-1" in loc._repr_html_()
    back = Localization.load(loc.save(tmp_path / "band", figure=False))
    assert back.config.band == (0.9, 1.0) and back.units == loc.units
    assert loc.select(top=0.1) == top.units and loc.select(band="90-100%") == loc.units
    middle = top.select(band=(0.5, 0.6))
    ranks = t.reshape(-1).argsort(descending=True).argsort().reshape(t.shape)
    assert sorted(ranks[middle.mask].tolist()) == list(range(48, 57))
    per_layer = localize(tiny, CONTRAST, band=(0.75, 1.0), selection="per_layer", progress=False)
    assert per_layer.units.mask.sum(1).tolist() == [8, 8, 8]
    with pytest.raises(LocalizeError, match="give one of them"):
        localize(tiny, CONTRAST, top=0.1, band=(0.8, 0.9), progress=False)
    with pytest.raises(LocalizeError, match="selects none"):
        localize(tiny, CONTRAST, band=(0.5, 0.505), progress=False)
    with pytest.raises(LocalizeError, match="one of them"):
        loc.select()
    with pytest.raises(LocalizeError, match="significance threshold"):
        loc.select("fdr:0.05")


def test_bad_arguments_fail_before_running(tiny):
    with pytest.raises(LocalizeError, match="Unknown site 'neurons'"):
        localize(tiny, CONTRAST, site="neurons", progress=False)
    with pytest.raises(LocalizeError, match="between 1 and 96"):
        localize(tiny, CONTRAST, top=97, progress=False)
    with pytest.raises(LocalizeError, match="Preset 'alkhamissi2025' fixes"):
        localize(tiny, CONTRAST, preset="alkhamissi2025", site="mlp_post", progress=False)
    with pytest.raises(LocalizeError, match="Unknown preset"):
        localize(tiny, CONTRAST, preset="paper", progress=False)
    with pytest.raises(LocalizeError, match="No built-in contrast"):
        localize(tiny, "vision", progress=False)


def test_identical_conditions_warn_that_nothing_is_selective(tiny):
    with pytest.warns(UserWarning, match="same texts"):
        same = Contrast("same", {"a": POS, "b": list(POS)}, "a", "b")
    with pytest.warns(UserWarning, match="nothing is selective"):
        localize(tiny, same, top=3, progress=False)


def test_preset_settings(tiny):
    last = Contrast("toy_last", CONTRAST.conditions, "words", "junk", pooling="last")
    loc = localize(tiny, last, preset="alkhamissi2025", top=4, progress=False)
    assert loc.config.truncate == 12 and loc.config.batch_size == 32  # batched by default
    exact = localize(tiny, last, preset="alkhamissi2025", top=4, batch_size=1, progress=False)
    assert exact.units == loc.units
    torch.testing.assert_close(exact.stats["t"], loc.stats["t"], rtol=1e-4, atol=1e-4)
    assert loc.config.pooling == "last" and loc.record["contrast"]["pooling"] == "last"
    # contrasts pooled by the mean (MD, ToM) keep the mean and are not truncated
    mean = localize(tiny, CONTRAST, preset="alkhamissi2025", top=4, progress=False)
    assert mean.config.truncate is None and mean.config.pooling == "mean"
    with pytest.raises(LocalizeError, match="fixes"):
        localize(tiny, CONTRAST, preset="alkhamissi2025", pooling="last", progress=False)


def test_save_and_load_folder(tiny, tmp_path):
    loc = localize(tiny, CONTRAST, top=6, progress=False)
    out = loc.save(tmp_path / "loc")
    assert {p.name for p in out.iterdir()} == {
        "record.json",
        "stats.safetensors",
        "units.safetensors",
        "units.csv",
        "conditions.csv",
        "layers.png",
    }
    record = json.loads((out / "record.json").read_text())
    assert record["contrast"]["hash"] == CONTRAST.hash
    assert record["config"]["top"] == 6 and "torch" in record["versions"]
    back = Localization.load(out, tiny)
    assert back.units == loc.units
    torch.testing.assert_close(back.stats["t"], loc.stats["t"])
    with pytest.raises(LocalizeError, match="already exists.*force=True"):
        loc.save(out)
    loc.save(out, force=True)


def test_interrupted_save_leaves_no_folder(tiny, tmp_path, monkeypatch):
    loc = localize(tiny, CONTRAST, top=6, progress=False)

    def broken_plot():
        raise KeyboardInterrupt

    monkeypatch.setattr(loc, "plot", broken_plot)
    with pytest.raises(KeyboardInterrupt):
        loc.save(tmp_path / "loc")
    assert list(tmp_path.iterdir()) == []


def test_plot_returns_a_figure(tiny):
    loc = localize(tiny, CONTRAST, top=6, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = loc.plot()
    assert len(fig.axes) == 2
    assert "6 of 96" in fig.axes[0].get_title()


@pytest.mark.model
def test_the_least_selective_band_on_the_default_model(default_model):
    loc = localize(default_model, "language", top=0.01, progress=False)
    low, top = loc.select(band=(0.99, 1.0)), loc.select(top=0.01)
    assert top == loc.units and len(low) == len(top) == 172 and len(low & top) == 0
    t = loc.stats["t"]
    assert float(t[low.mask].nan_to_num(-1e9).max()) < float(t[top.mask].min())
    assert len(loc.select(band=(0.8, 0.9))) == 1728
