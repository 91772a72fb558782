"""The public names that no other test used (see tests/test_public_coverage.py): what each
does, on tiny models (fast tier)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tl_localize import (
    TASKS,
    AttributionCheck,
    BrainAlignment,
    BrainData,
    LocalizeConfig,
    LocalizeError,
    Model,
    Overlap,
    Task,
    brain_alignment,
    check_attribution,
    evaluate,
    get_task,
    layer_alignment,
    overlap,
    plot_check,
    plot_layer_alignment,
    plot_profile,
    profile,
    register_task,
    tasks,
)


def test_localize_config_and_model_protocol(tiny, saved_loc):
    loc = saved_loc[0]
    assert isinstance(loc.config, LocalizeConfig) and loc.config.top == 6
    assert LocalizeConfig.from_dict(loc.config.to_dict()) == loc.config
    assert isinstance(tiny, Model) and not isinstance(object(), Model)


def test_overlap_and_profile_plot(tiny, toy_contrast, saved_loc):
    units = saved_loc[0].units
    both = overlap(units, units)
    assert isinstance(both, Overlap) and both.to_frame()["jaccard"].iloc[0] == 1.0
    frame = profile(tiny, units, toy_contrast, progress=False)
    fig = plot_profile(frame, "toy")
    ax = fig.axes[0]
    assert ax.get_title() == "toy" and len(ax.patches) == len(frame) == 2


def test_attribution_check_and_its_plot(tiny, toy_pairs):
    check = check_attribution(tiny, "resid_post", toy_pairs, n_units=6, n_items=3, progress=False)
    assert isinstance(check, AttributionCheck) and len(check) == 6
    ax = plot_check(check).axes[0]
    assert ax.get_title().startswith(f"r = {check.pearson:.2f}")
    assert len(ax.collections[0].get_offsets()) == 6  # one point per checked unit


def test_brain_alignment_result_and_layer_plot(tiny, saved_loc):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"Sentence": [f"the cat sat {i}" for i in range(12)], "EffectSize": rng.normal(size=12)}
    )
    data = BrainData.from_frame(frame)
    result = brain_alignment(
        tiny, saved_loc[0], data, n_random=1, match="uniform", folds=3, n_boot=100,
        n_permutations=100, progress=False,
    )  # fmt: skip
    assert isinstance(result, BrainAlignment)
    layers = layer_alignment(tiny, data, folds=3, n_boot=100, progress=False)
    (line,) = plot_layer_alignment(layers).axes[0].get_lines()
    assert list(line.get_xdata()) == [0, 1, 2]
    assert list(line.get_ydata()) == pytest.approx(layers["r"].tolist(), nan_ok=True)


def test_register_get_and_prepare_a_task(tmp_path):
    mine = Task(
        "mine-coverage",
        load=lambda: pd.DataFrame({"sentence_good": ["a b"], "sentence_bad": ["b a"]}),
        score=lambda *a, **k: pd.DataFrame({"correct": [True]}),
        pairs=lambda items: items,
    )
    try:
        assert register_task(mine) is mine
        assert get_task("mine-coverage") is tasks.get_task("mine-coverage") is mine
        with pytest.raises(LocalizeError, match="registered already"):
            tasks.register_task(mine)
        assert "mine-coverage" in tasks.attributable() and "perplexity" not in tasks.attributable()
        (prepared,) = tasks.prepare_tasks(["mine-coverage"])
        assert isinstance(prepared, tasks.PreparedTask) and prepared.name == "mine-coverage"
        assert list(prepared.pairs()["sentence_good"]) == ["a b"]
    finally:
        TASKS.pop("mine-coverage", None)
    (tmp_path / "texts.txt").write_text("one text\n\n  \nanother\n", encoding="utf-8")
    assert tasks.read_texts(tmp_path / "texts.txt") == ["one text", "another"]
    assert tasks.read_texts(["x", "y"]) == ["x", "y"]


def test_minimal_pairs_frame_and_read_jsonl(tmp_path, toy_pairs):
    frame = evaluate.minimal_pairs_frame(toy_pairs)
    assert list(frame["sentence_good"]) == [good for good, _ in toy_pairs]
    assert list(frame["sentence_bad"]) == [bad for _, bad in toy_pairs]
    path = tmp_path / "p.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n', encoding="utf-8")
    assert evaluate.read_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\n{x\n', encoding="utf-8")
    with pytest.raises(LocalizeError, match=r"p\.jsonl, line 2"):
        evaluate.read_jsonl(path)
