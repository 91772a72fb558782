import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from tl_localize import (
    BrainData,
    LocalizeError,
    Units,
    brain_alignment,
    layer_alignment,
    plot_brain_alignment,
    sentence_features,
)
from tl_localize.brain import encoding_score

WORDS = "the a cat dog ran sat on mat big small red blue fox owl hen quick slow".split()


def _sentences(n, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(3, 8))) for _ in range(n)]


@pytest.fixture(scope="module")
def planted(tiny):
    """Brain data whose response is one unit of the tiny model (layer 1, unit 5) plus noise."""
    sentences = list(dict.fromkeys(_sentences(140)))[:100]
    feats = sentence_features(tiny, sentences, progress=False)
    rng = np.random.default_rng(1)
    response = feats[:, 1, 5].numpy() + 0.05 * feats[:, 1, 5].std().item() * rng.normal(size=100)
    data = BrainData.from_frame(pd.DataFrame({"Sentence": sentences, "EffectSize": response}))
    return data, feats


def test_planted_unit_is_found(tiny, planted):
    data, feats = planted
    mask = torch.zeros(3, 32, dtype=torch.bool)
    mask[1, 5] = mask[0, 1] = mask[2, 9] = True
    units = Units(mask, "resid_post", "tiny")
    result = brain_alignment(
        tiny, units, data, n_random=5, match="uniform", folds=5, n_boot=200, progress=False
    )
    frame = result.table
    assert frame["set"].tolist() == ["selected"] + ["random"] * 5 + ["all"]
    assert (frame["n_units"] == [3] * 6 + [96]).all()
    assert set(frame["data"]) == {"brain"} and set(frame["model"]) == {"tiny"}
    selected = frame.iloc[0]
    assert selected["r"] > 0.9 and selected["r_low"] <= selected["r"] <= selected["r_high"]
    assert (frame.loc[frame["set"] == "random", "r"] < selected["r"]).all()
    verdict = result.verdicts.iloc[0]
    assert verdict["match"] == "uniform" and verdict["n_seeds"] == 5
    random_mean = frame.loc[frame["set"] == "random", "r"].mean()
    assert verdict["difference_r"] == pytest.approx(selected["r"] - random_mean)
    assert verdict["difference_low"] <= verdict["difference_r"] <= verdict["difference_high"]
    assert verdict["p_value"] < 0.05 and verdict["verdict"] == "specific"
    assert "specific against uniform controls" in result.summary()
    # features passed in give the same result as features computed inside
    again = brain_alignment(
        tiny, units, data, n_random=5, match="uniform", folds=5, n_boot=200, features=feats,
        progress=False,
    )  # fmt: skip
    pd.testing.assert_frame_equal(frame, again.table)
    pd.testing.assert_frame_equal(result.verdicts, again.verdicts)
    layers = layer_alignment(tiny, data, folds=5, n_boot=100, features=feats, progress=False)
    assert layers["layer"].tolist() == [0, 1, 2]
    assert layers.loc[1, "r"] > 0.5
    fig = plot_brain_alignment(result)
    assert fig.axes[0].get_ylabel().startswith("encoding r")


def test_units_without_the_planted_one_are_not_specific(tiny, planted):
    data, feats = planted
    mask = torch.zeros(3, 32, dtype=torch.bool)
    mask[0, 1] = mask[2, 9] = mask[2, 20] = True
    units = Units(mask, "resid_post", "tiny")
    result = brain_alignment(
        tiny, units, data, n_random=5, match="uniform", folds=5, n_boot=200, features=feats,
        progress=False,
    )  # fmt: skip
    # some random sets hold the planted unit and beat the selected set by far
    assert result.verdicts.iloc[0]["verdict"] == "not specific", result.verdicts


def test_encoding_score_is_honest_on_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 50))
    data = BrainData(
        [f"s{i}" for i in range(200)], pd.DataFrame({"y": rng.normal(size=200)}), name="noise"
    )
    score = encoding_score(x, data, folds=5, n_boot=200)
    assert abs(score["r"]) < 0.25  # leakage would show up as a high r on pure noise
    y = x[:, 0] * 2 + 0.1 * rng.normal(size=200)
    data2 = BrainData(data.sentences, pd.DataFrame({"a": y, "b": -y}), name="signal")
    score2 = encoding_score(x, data2, folds=5, n_boot=200, ceiling=0.5)
    assert score2["r"] > 0.9 and score2["r_ceiled"] == pytest.approx(score2["r"] / 0.5)
    assert encoding_score(x, data2, folds=5, n_boot=200) == encoding_score(
        x, data2, folds=5, n_boot=200
    )


def test_groups_keep_folds_apart():
    rng = np.random.default_rng(0)
    data = BrainData(
        [f"s{i}" for i in range(60)],
        pd.DataFrame({"y": rng.normal(size=60)}),
        groups=[str(i % 3) for i in range(60)],
    )
    with pytest.raises(LocalizeError, match="3 groups cannot be split into 5 folds"):
        encoding_score(rng.normal(size=(60, 4)), data, folds=5)
    assert np.isfinite(encoding_score(rng.normal(size=(60, 4)), data, folds=3)["r"])


def test_bad_brain_data(tiny, make_tiny, planted):
    df = pd.DataFrame(
        {"Sentence": ["a b", "c d", "e f", "c d"], "EffectSize": [1.0, np.nan, np.inf, 2.0]}
    )
    with pytest.raises(LocalizeError, match=r"No column 'Response'.*\['Sentence', 'EffectSize'\]"):
        BrainData.from_frame(df, responses=["Response"])
    with pytest.raises(LocalizeError, match="No column 'text'"):
        BrainData.from_frame(df, sentence="text")
    with pytest.raises(LocalizeError, match=r"'EffectSize' is missing or not a finite.*rows 2, 3"):
        BrainData.from_frame(df)
    with pytest.warns(UserWarning, match="dropped 2 row"):
        data = BrainData.from_frame(df, dropna=True)
    assert data.sentences == ["a b", "c d"] and len(data) == 2
    with pytest.warns(UserWarning, match="1 duplicate sentence"):
        BrainData.from_frame(df.fillna(0).replace(np.inf, 0))
    units = Units(torch.ones(3, 32, dtype=torch.bool), "resid_post", "tiny")
    with pytest.raises(LocalizeError, match="2 sentences cannot be split into 10 folds"):
        brain_alignment(tiny, units, data, match="uniform", progress=False)
    with pytest.raises(LocalizeError, match="match='magnitude' needs activation magnitudes"):
        brain_alignment(tiny, units, planted[0], progress=False)
    with pytest.raises(LocalizeError, match="match='least_active' needs activation magnitudes"):
        brain_alignment(tiny, units, planted[0], match=["least_active"], progress=False)
    with pytest.raises(LocalizeError, match="n_boot must be a whole number of at least 100"):
        brain_alignment(tiny, units, planted[0], match="uniform", n_boot=10, progress=False)
    constant = pd.DataFrame({"Sentence": ["a", "b", "c"], "EffectSize": [1.0, 1.0, 1.0]})
    with pytest.raises(LocalizeError, match="same value in every usable row"):
        BrainData.from_frame(constant)
    with warnings.catch_warnings():  # the error alone: no warning about dropped rows first
        warnings.simplefilter("error")
        with pytest.raises(LocalizeError, match="No usable rows"):
            BrainData.from_frame(constant.assign(EffectSize=np.nan), dropna=True)
    other = make_tiny(n_layers=2, name="other")
    with pytest.raises(LocalizeError, match="made for 'tiny'"):
        brain_alignment(other, units, planted[0], match="uniform", progress=False)
    with pytest.raises(LocalizeError, match="features have shape"):
        brain_alignment(
            tiny, units, planted[0], n_random=0, features=torch.zeros(3, 3, 32), progress=False
        )
