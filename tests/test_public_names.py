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


def test_brain_and_attribution_configs_check_their_fields():
    from tl_localize import AttributionConfig, BrainConfig

    assert BrainConfig().folds == 10 and tuple(BrainConfig(ceiling=[0.5, 0.8]).ceiling) == (
        0.5,
        0.8,
    )
    with pytest.raises(LocalizeError, match="ceiling") as error:
        BrainConfig(ceiling=1.5)
    assert error.value.field == "ceiling"
    assert (AttributionConfig().check_units, AttributionConfig().check_items) == (40, 32)
    with pytest.raises(LocalizeError, match="unaligned"):
        AttributionConfig(unaligned="keep")


def test_brain_data_spec_reads_a_header_and_names_a_missing_column(tmp_path):
    from tl_localize.study import BrainDataSpec

    csv = tmp_path / "brain.csv"
    pd.DataFrame({"Sentence": ["a b", "c d"], "EffectSize": [0.1, 0.2]}).to_csv(csv, index=False)
    found = BrainDataSpec.parse("brain.data[0]", {"path": "brain.csv"}, tmp_path)
    assert (found.path, found.name, found.responses) == (str(csv), "brain", ["EffectSize"])
    with pytest.raises(LocalizeError, match=r"brain.data\[0\].responses: .*no column 'BOLD'"):
        BrainDataSpec.parse("brain.data[0]", {"path": "brain.csv", "responses": ["BOLD"]}, tmp_path)


def test_study_status_lists_each_planned_job(tmp_path, tiny_hf):
    from tl_localize.study import Study, plan_study, run_study, study_status

    small_csv = tmp_path / "small.csv"
    texts = ["the cat sat", "a dog ran", "we saw a fox", "zq vbk", "plo fwe", "xxv qql"]
    pd.DataFrame({"text": texts, "condition": list("SSSNNN")}).to_csv(small_csv, index=False)

    spec = {"name": "status", "models": [{"label": "llama", "spec": str(tiny_hf["llama"])}],
            "networks": [{"name": "lang", "contrast": str(small_csv), "positive": "S",
                          "negative": "N", "top": [0.05]}],
            "tasks": {"builtin": {"n_per_paradigm": 1}}}  # fmt: skip
    run_study(Study.from_dict(spec), tmp_path / "out", retry_failed=True, progress=False)
    status = study_status(tmp_path / "out")
    planned = plan_study(Study.from_dict(spec))
    assert len(status) == len(planned) and set(status["status"]) == {"pending"}
    with pytest.raises(LocalizeError, match="not a study folder"):
        study_status(tmp_path)
