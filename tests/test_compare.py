"""Ablation on the default model: evaluations, compare_ablation, the ablate command."""

import json

import pandas as pd
import pytest

from tl_localize import (
    Contrast,
    LocalizeError,
    Units,
    compare_ablation,
    evaluate,
    generation_sample,
    localize,
    plot_ablation,
)
from tl_localize.cli import main
from tl_localize.report import build_report
from tl_localize.stats import mcnemar_p
from tl_localize.tasks import TASKS

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def loc(default_model):
    full = Contrast.builtin("language")
    small = Contrast("language", {"s": full.positive[:48], "n": full.negative[:48]}, "s", "n")
    return localize(default_model, small, progress=False)


@pytest.fixture(scope="module")
def pairs():
    return evaluate.builtin_pairs().groupby("paradigm").head(3)


def test_builtin_suite_intact(default_model):
    result = evaluate.minimal_pairs(default_model, evaluate.builtin_pairs(), progress=False)
    assert len(result) >= 300
    assert result["correct"].mean() > 0.7  # the intact model knows most of its grammar
    assert result.groupby("phenomenon")["correct"].mean().min() > 0.5


def test_blimp_from_the_shared_folder(default_model, shared_data):
    result = evaluate.blimp(
        default_model,
        shared_data / "blimp",
        paradigms=["determiner_noun_agreement_1", "anaphor_number_agreement", "npi_present_1"],
        n_per_paradigm=25,
        progress=False,
    )
    assert len(result) == 75 and set(result["paradigm"]) == {
        "determiner_noun_agreement_1", "anaphor_number_agreement", "npi_present_1",
    }  # fmt: skip
    assert result["correct"].mean() > 0.6
    assert result["pairID"].notna().all()


def test_compare_ablation_table(default_model, loc, pairs):
    task = ("pairs", lambda model, **kw: evaluate.minimal_pairs(model, pairs, **kw))
    result = compare_ablation(
        default_model, loc, [task], n_random=2, fractions=[0.005, 0.01], progress=False
    )
    frame, items = result.table, result.items
    assert len(frame) == 1 + 2 * (1 + 2 * 2)
    assert set(frame["model"]) == {default_model.cfg.model_name} and set(frame["metric"]) == {
        "accuracy"
    }
    intact = frame[frame["set"] == "intact"].iloc[0]
    assert intact["change_pct"] == 0 and intact["n_units"] == 0
    selected = frame[frame["set"] == "selected"]
    assert selected["n_units"].tolist() == [86, 172]
    random = frame[frame["set"] == "random"]
    assert set(random["match"]) == {"uniform", "magnitude"}
    assert (random["n_units"].to_numpy() == random["fraction"].map({0.005: 86, 0.01: 172})).all()
    # the paired test against intact is the exact McNemar test on the per-item outcomes
    first = items[(items["set"] == "selected") & (items["fraction"] == 0.005)]["correct"]
    base = items[items["set"] == "intact"]["correct"]
    assert selected.iloc[0]["p_vs_intact"] == pytest.approx(
        mcnemar_p(first.to_numpy(), base.to_numpy())
    )
    # the magnitude-matched controls hold as many loud units as the selected set, roughly
    sel_loud = selected.set_index("fraction")["n_high_magnitude"]
    mag = random[random["match"] == "magnitude"].groupby("fraction")["n_high_magnitude"].mean()
    uni = random[random["match"] == "uniform"].groupby("fraction")["n_high_magnitude"].mean()
    assert (abs(mag - sel_loud) < abs(uni - sel_loud) + 1e-9).all()
    assert len(items) == len(frame) * len(pairs)
    expected = (frame["value"] / intact["value"] - 1) * 100
    pd.testing.assert_series_equal(frame["change_pct"], expected, check_names=False)
    assert ((frame["change_low"] <= frame["change_pct"] + 1e-9)
            & (frame["change_pct"] <= frame["change_high"] + 1e-9)).all()  # fmt: skip
    verdicts = result.verdicts
    assert len(verdicts) == 2 * 2 and set(verdicts["verdict"]) <= {"specific", "not specific"}
    assert (verdicts["verdict"] == "specific").eq(verdicts["p_adjusted"] < 0.05).all()
    assert (verdicts["p_adjusted"] >= verdicts["p_value"]).all()  # Holm over the 4
    summary = result.summary()
    assert summary.count("Zeroing the") == 2 and "magnitude-matched random sets" in summary
    fig = plot_ablation(result)
    assert len(fig.axes) == 1
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["0.5%", "1%"]


def test_arithmetic_at_the_floor_is_at_chance_and_never_a_minus_100_effect(default_model, loc):
    result = compare_ablation(default_model, loc, ["arithmetic"], n_per_paradigm=10,
                              n_random=1, match="uniform", n_boot=200, progress=False)  # fmt: skip
    state = result.states().set_index("task").loc["arithmetic"]
    scored = result.items[result.items["set"] == "intact"]
    assert state["chance"] == pytest.approx(TASKS["arithmetic"].chance_of(scored))
    assert 0 < state["chance"] < 0.02  # 1 / 57 answers at most (the easy level)
    text = result.summary()
    if state["state"] == "at chance":  # the intact model's interval reaches chance
        assert state["value_low"] <= state["chance"]
        assert (result.verdicts["verdict"] == "at chance").all()
        assert "arithmetic is at chance for the intact model" in text
        assert "-100" not in text and "100.0%" not in text
    else:  # above chance with its interval: the effect is reported
        assert state["value_low"] > state["chance"]
        assert set(result.verdicts["verdict"]) <= {"specific", "not specific"}
        assert text.startswith("Zeroing the")


def test_compare_ablation_bad_input(default_model, loc, tiny):
    foreign = Units(loc.units.mask[:3, :32].clone(), "resid_post", tiny.cfg.model_name)
    with pytest.raises(LocalizeError, match="made for 'tiny'"):
        compare_ablation(default_model, foreign, ["builtin"], progress=False)
    with pytest.raises(LocalizeError, match="Unknown task 'glue'"):
        compare_ablation(default_model, loc, ["glue"], progress=False)
    with pytest.raises(LocalizeError, match="match='magnitude' needs activation magnitudes"):
        compare_ablation(default_model, loc.units, ["builtin"], progress=False)
    with pytest.raises(LocalizeError, match="fractions= re-selects units by t"):
        compare_ablation(default_model, loc.units, match="uniform", fractions=[0.01])
    with pytest.raises(LocalizeError, match="Task 'blimp' needs blimp="):
        compare_ablation(default_model, loc, ["blimp"], progress=False)


def test_generation_sample(default_model, loc):
    sample = generation_sample(
        default_model, {"intact": None, "selected": loc.units}, max_new_tokens=8
    )
    assert sample["set"].tolist() == ["intact", "selected"]
    intact, ablated_text = sample["continuation"]
    assert intact.strip() and intact != ablated_text


def test_ablate_command(default_model, loc, tmp_path, capsys):
    units_dir = loc.save(tmp_path / "loc", figure=False)
    out = tmp_path / "ablation"
    args = ["ablate", "--units", str(units_dir), "--tasks", "builtin", "--n-per-paradigm", "2"]
    args += ["--n-random", "1", "--out", str(out), "--quiet"]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert names == {
        "ablation.csv", "verdicts.csv", "items.csv", "generation.csv", "ablation.png",
        "record.json",
    }  # fmt: skip
    frame = pd.read_csv(out / "ablation.csv")
    assert frame["set"].tolist() == ["intact", "selected", "random", "random"]
    record = json.loads((out / "record.json").read_text())
    assert record["localization"]["contrast"]["hash"] == loc.record["contrast"]["hash"]
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    mean_args = [*args[:-5], "--n-random", "0", "--method", "mean", "--reference", "md"]
    assert main([*mean_args, "--out", str(tmp_path / "mean"), "--quiet"]) == 0
    record = json.loads((tmp_path / "mean" / "record.json").read_text())
    assert record["method"] == "mean"
    frame = pd.read_csv(tmp_path / "mean" / "ablation.csv")
    assert frame["set"].tolist() == ["intact", "selected"]


def test_syntaxgym_agreement_suite(default_model, tmp_path):
    subjects = [
        ("The key to the cabinets", "is", "are"),
        ("The author of the books", "was", "were"),
        ("The picture of the dogs", "is", "are"),
        ("The keys to the cabinet", "are", "is"),
        ("The authors of the book", "were", "was"),
        ("The pictures of the dog", "are", "is"),
    ]
    items = []
    for number, (subject, good, bad) in enumerate(subjects, start=1):
        conditions = []
        for name, verb in (("match", good), ("mismatch", bad)):
            regions = [subject, verb, "on the table", "."]
            conditions.append(
                {
                    "condition_name": name,
                    "regions": [
                        {"region_number": i + 1, "content": c} for i, c in enumerate(regions)
                    ],
                }
            )
        items.append({"item_number": number, "conditions": conditions})
    suite = {
        "meta": {"name": "agreement_pp"},
        "region_meta": {"1": "subject", "2": "verb", "3": "rest", "4": "end"},
        "predictions": [
            {"type": "formula", "formula": "(2;%match%) < (2;%mismatch%)"},
            {"type": "formula", "formula": "(1;%match%) = (1;%mismatch%)"},
        ],
        "items": items,
    }
    (tmp_path / "agreement_pp.json").write_text(json.dumps(suite))
    result = evaluate.syntaxgym(default_model, tmp_path, progress=False)
    assert (result["suite"] == "agreement_pp").all() and len(result) == 6
    assert result["prediction_1"].all()  # identical prefixes have identical surprisal
    assert result["correct"].sum() >= 4


def test_brain_command_on_pereira(default_model, loc, shared_data, tmp_path, capsys):
    units_dir = loc.save(tmp_path / "loc", figure=False)
    table = pd.read_csv(shared_data / "brain" / "pereira2018_language_network.csv").head(150)
    table.to_csv(tmp_path / "pereira150.csv", index=False)
    out = tmp_path / "brain"
    args = ["brain", "--units", str(units_dir), "--out", str(out), "--quiet"]
    args += ["--data", str(tmp_path / "pereira150.csv"), "--n-random", "3", "--folds", "5"]
    assert main(args) == 0
    assert "The 172 selected units predict" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {
        "alignment.csv", "verdicts.csv", "alignment.png", "predictions.npz", "record.json",
    }  # fmt: skip
    frame = pd.read_csv(out / "alignment.csv")
    assert frame["set"].tolist() == ["selected"] + ["random"] * 6 + ["all"]
    assert frame["n_units"].tolist() == [172] * 7 + [30 * 576]
    assert len(pd.read_csv(out / "verdicts.csv")) == 2
    assert frame["r"].between(-1, 1).all() and frame["r"].notna().all()
    record = json.loads((out / "record.json").read_text())
    assert record["data"]["n_sentences"] == 150 and record["folds"] == 5
    # the report summarizes r by set and embeds the figure
    page = build_report(out)
    assert "(brain alignment)" in page and "r by set, summarized over 8 rows" in page
    assert page.count("<img ") == 1 and "tl-localize brain" in page
    assert main([*args, "--force", "--response-column", "Response"]) == 2
    assert "No column 'Response'" in capsys.readouterr().err
