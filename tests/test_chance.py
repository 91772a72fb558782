"""Chance and ceiling, family-wise adjustment of verdicts, the double-dissociation table
(fast tier: synthetic per-item outcomes; every adjusted p against an independent
computation)."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from tl_localize import LocalizeError, compare_ablation, evaluate, localize
from tl_localize.cli import main
from tl_localize.compare import (
    AblationComparison,
    adjust_verdicts,
    plot_ablation,
    summarize_sets,
    task_states,
)
from tl_localize.data.arithmetic import LEVELS, heldout_problems, solve
from tl_localize.stats import adjust_p
from tl_localize.study import Study
from tl_localize.study.results import dissociation_table, double_dissociations, headline_table
from tl_localize.tasks import TASKS, Task

N = 60
CHANCE = {"arith": 0.01, "pairs": 0.5, "story": 0.5, "easy": 0.5}


def _holm(p):
    """Holm's step-down adjustment, written out from its definition."""
    p = np.asarray(p, dtype=float)
    order, m = np.argsort(p), len(p)
    out, running = np.empty(m), 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        out[i] = min(1.0, running)
    return out


def _outcomes(rate, seed, base=None):
    """Right/wrong per item: ``base`` items kept right with probability ``rate``, or fresh
    items right with probability ``rate``."""
    rng = np.random.default_rng(seed)
    if base is None:
        return rng.random(N) < rate
    return base & (rng.random(N) < rate)


def _study_rows(harm, *, n_seeds=2, tasks=("pairs", "story", "arith", "easy")):
    """A study's evaluations: intact per task, then per network the selected set and
    ``n_seeds`` uniform and magnitude controls. ``harm[(network, task)]`` is the share of
    right items the selected set keeps (controls keep 95%)."""
    rows, found = [], []

    def add(task, network, set_, match, seed, values):
        rows.append({"model": "m", "network": network, "task": task, "metric": "accuracy",
                     "method": "zero", "fraction": 0.0 if set_ == "intact" else 0.01,
                     "set": set_, "match": match, "seed": seed, "n_units": 10})  # fmt: skip
        found.append(values)

    intact = {
        "pairs": _outcomes(0.85, 1),
        "story": _outcomes(0.9, 2),
        "arith": np.arange(N) == 0,  # 1 of 60 right: at the floor
        "easy": np.ones(N, bool),  # every item right, under every set
    }
    for task in tasks:
        add(task, None, "intact", None, None, intact[task])
    for k, (network, task) in enumerate(itertools.product(("lang", "md"), tasks)):
        keep = 1.0 if task == "easy" else harm.get((network, task), 0.95)
        base = intact[task] if task != "arith" else np.zeros(N, bool)
        add(task, network, "selected", None, None, _outcomes(keep, 10 + k, base))
        for match in ("uniform", "magnitude"):
            for seed in range(n_seeds):
                rate = 1.0 if task == "easy" else 0.95
                values = _outcomes(rate, 100 * k + 10 * seed + len(match), base)
                add(task, network, "random", match, seed, values)
    return rows, found


PLANTED = {("lang", "pairs"): 0.3, ("md", "story"): 0.3}


# -- chance levels ------------------------------------------------------------------------
def test_each_task_declares_its_chance_level():
    problems = heldout_problems(20)
    brute = {
        level: len({solve(a, op, b) for a in range(lo, hi + 1) for b in range(lo, hi + 1)
                    for op in "+-"})
        for level, (lo, hi) in LEVELS.items() if level != "three_digit"
    }  # fmt: skip
    assert brute["easy"] == 57  # -18 .. 38
    expected = np.mean([1 / brute[level] for level in problems["level"]])
    assert TASKS["arithmetic"].chance_of(problems) == pytest.approx(expected)
    assert TASKS["builtin"].chance_of(evaluate.builtin_pairs()) == 0.5
    assert TASKS["blimp"].chance == 0.5
    stories = pd.DataFrame({"answer": [True, True, True, False]})
    assert TASKS["false_belief"].chance_of(stories) == 0.75  # always "True": 3 of 4
    gym = pd.DataFrame({"prediction_0": [True, False], "prediction_1": [True, None],
                        "correct": [True, False]})  # fmt: skip
    assert TASKS["syntaxgym"].chance_of(gym) == pytest.approx((0.25 + 0.5) / 2)
    assert math.isnan(TASKS["perplexity"].chance_of(pd.DataFrame({"nll": [2.0]})))
    mine = Task("mine", load=lambda: None, score=lambda *a, **k: pd.DataFrame())
    assert mine.chance_of(pd.DataFrame({"correct": [True, False]})) == 0.0  # the floor


def test_a_task_at_the_floor_is_at_chance_and_no_effect_is_claimed():
    rows, found = _study_rows(PLANTED)
    rows = [r for r in rows if r["network"] in (None, "lang")]
    found = [f for f, r in zip(found, _study_rows(PLANTED)[0], strict=True)
             if r["network"] in (None, "lang")]  # fmt: skip
    for row in rows:
        del row["network"]
    table, verdicts = summarize_sets(rows, found, {}, n_boot=200, seed=0, chance=CHANCE)
    states = task_states(table).set_index("task")["state"]
    assert states.to_dict() == {"pairs": "above chance", "story": "above chance",
                                "arith": "at chance", "easy": "at ceiling"}  # fmt: skip
    arith = table[(table["task"] == "arith") & (table["set"] != "intact")]
    assert (arith["change_pct"] == -100).all()  # the number is kept in the table ...
    by_task = verdicts.groupby("task")["verdict"].agg(set)
    assert by_task["arith"] == {"at chance"} and by_task["easy"] == {"at ceiling"}
    assert verdicts.loc[verdicts["task"].isin(["arith", "easy"]), "p_adjusted"].isna().all()
    comparison = AblationComparison(table, verdicts, pd.DataFrame(),
                                    {"method": "zero", "adjust": "holm"})  # fmt: skip
    text = comparison.summary()
    assert "arith is at chance for the intact model" in text
    assert "easy is at ceiling" in text
    assert "100.0%" not in text and "-100" not in text  # ... but never claimed
    assert "lowers pairs accuracy" in text  # a measurable task keeps its effect
    assert "Holm adjustment over the 4 comparisons" in text
    plot_ablation(comparison)  # draws with the at-chance and at-ceiling panels empty
    # the interval decides: above chance once the intact model clears it
    better = [np.arange(N) < 20 if r["task"] == "arith" and r["set"] == "intact" else f
              for f, r in zip(found, rows, strict=True)]  # fmt: skip
    table, verdicts = summarize_sets(rows, better, {}, n_boot=200, seed=0, chance=CHANCE)
    assert "at chance" not in set(verdicts["verdict"])
    assert set(verdicts.loc[verdicts["task"] == "arith", "verdict"]) == {"not specific"}


# -- family-wise adjustment ----------------------------------------------------------------
@pytest.mark.parametrize("method", ["holm", "fdr_bh"])
def test_adjusted_p_values_agree_with_an_independent_computation(method):
    rows, found = _study_rows(PLANTED)
    _, verdicts = summarize_sets(rows, found, {}, n_boot=200, seed=0, chance=CHANCE, adjust=method)
    tested = verdicts[verdicts["verdict"].isin(["specific", "not specific"])]
    assert len(tested) == 2 * 2 * 2  # networks x measurable tasks x control kinds
    raw = tested["p_value"].to_numpy()
    expected = _holm(raw) if method == "holm" else sps.false_discovery_control(raw)
    np.testing.assert_allclose(tested["p_adjusted"].to_numpy(), expected, rtol=1e-12)
    assert (tested["verdict"] == "specific").eq(tested["p_adjusted"] < 0.05).all()
    assert (tested["p_adjusted"] >= tested["p_value"] - 1e-15).all()
    specific = tested[tested["verdict"] == "specific"]
    assert set(zip(specific["network"], specific["task"], strict=True)) == set(PLANTED)
    # adjusting again (a study joins its brain verdicts) changes nothing
    pd.testing.assert_frame_equal(adjust_verdicts(verdicts, method), verdicts)


def test_adjustment_can_overturn_a_verdict():
    frame = pd.DataFrame({"p_value": [0.005, 0.02, 0.03, 0.035, 0.9],
                          "verdict": ["specific"] * 4 + ["not specific"]})  # fmt: skip
    held = adjust_verdicts(frame, "holm")
    assert held["p_adjusted"].tolist() == pytest.approx([0.025, 0.08, 0.09, 0.09, 0.9])
    assert held["verdict"].tolist() == ["specific"] + ["not specific"] * 4
    assert adjust_verdicts(frame, "none")["verdict"].tolist() == frame["verdict"].tolist()
    bh = adjust_verdicts(frame, "fdr_bh")  # controls the false discovery rate: less strict
    assert bh["p_adjusted"].tolist() == pytest.approx([0.025] + [0.04375] * 3 + [0.9])
    assert bh["verdict"].tolist() == frame["verdict"].tolist()
    assert np.isnan(adjust_p([np.nan, 0.2], "holm")[0])
    with pytest.raises(ValueError, match="holm"):
        adjust_p([0.1], "bonferroni")


def test_a_bad_adjustment_is_refused(tiny, toy_contrast, toy_pairs, tmp_path, capsys):
    argv = ["ablate", "--units", str(tmp_path), "--adjust", "bonferroni", "--out", "o"]
    assert main(argv) == 2  # before any model loads
    err = capsys.readouterr().err
    assert "--adjust: invalid choice: 'bonferroni'" in err and len(err.strip().splitlines()) == 1
    loc = localize(tiny, toy_contrast, top=6, progress=False)
    task = ("pairs", lambda model, **kw: evaluate.minimal_pairs(model, toy_pairs, **kw))
    with pytest.raises(LocalizeError, match=r"adjust='bonferroni'.*holm.*fdr_bh"):
        compare_ablation(tiny, loc, [task], adjust="bonferroni", progress=False)
    data = {"models": [{"label": "a"}], "networks": [{"name": "lang"}], "adjust": "bonf",
            "tasks": {"builtin": {}}}  # fmt: skip
    with pytest.raises(LocalizeError, match=r"^adjust: 'bonf' is not one of"):
        Study.from_dict(data)
    assert Study.from_dict({**data, "adjust": "fdr_bh"}).adjust == "fdr_bh"
    result = compare_ablation(tiny, loc, [task], n_random=2, adjust="none", n_boot=200,
                              progress=False)  # fmt: skip
    assert result.settings["adjust"] == "none"
    assert set(result.table["chance"]) == {0.0}  # a user function: the floor
    state = result.states()["state"].item()
    verdicts = result.verdicts
    if state == "at chance":  # a random model: its interval reaches the floor
        assert (verdicts["verdict"] == "at chance").all() and verdicts["p_adjusted"].isna().all()
    else:
        assert verdicts["p_adjusted"].equals(verdicts["p_value"])


# -- the headline and the double-dissociation table ----------------------------------------
def test_headline_and_double_dissociation():
    rows, found = _study_rows(PLANTED)
    _, verdicts = summarize_sets(rows, found, {}, n_boot=200, seed=0, chance=CHANCE)
    headline = headline_table(verdicts, "holm").set_index(["network", "task"])
    assert (headline["n_comparisons"] == 8).all() and (headline["adjust"] == "holm").all()
    assert headline.loc[("lang", "pairs"), "effect"] == "holds"
    assert headline.loc[("md", "pairs"), "effect"] == "does not hold"
    for network in ("lang", "md"):
        assert headline.loc[(network, "arith"), "effect"] == "at chance"
        assert headline.loc[(network, "easy"), "effect"] == "at ceiling"
        blocked = headline.loc[[(network, "arith"), (network, "easy")]]
        assert blocked[["selected_change_pct", "vs uniform", "vs magnitude"]].isna().all().all()
    assert headline.loc[("lang", "pairs"), "selected_change_pct"] < -50
    cells = dissociation_table(verdicts).set_index(["network", "task"])["verdict"]
    assert cells.to_dict() == {
        ("lang", "pairs"): "hurts", ("lang", "story"): "no specific effect",
        ("lang", "arith"): "at chance", ("lang", "easy"): "at ceiling",
        ("md", "pairs"): "no specific effect", ("md", "story"): "hurts",
        ("md", "arith"): "at chance", ("md", "easy"): "at ceiling",
    }  # fmt: skip
    found_dd = double_dissociations(dissociation_table(verdicts))
    assert found_dd.to_dict("records") == [
        {"model": "m", "network_a": "lang", "task_a": "pairs", "network_b": "md",
         "task_b": "story"}
    ]  # fmt: skip
    # one network hurting both tasks is no double dissociation
    rows, found = _study_rows({**PLANTED, ("lang", "story"): 0.3})
    _, verdicts = summarize_sets(rows, found, {}, n_boot=200, seed=0, chance=CHANCE)
    assert double_dissociations(dissociation_table(verdicts)).empty
