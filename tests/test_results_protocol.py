"""Every result type holds to one protocol (``tl_localize.protocol.Result``): a tidy table,
the finding in words, a figure, a card, and a results folder whose record names its kind
and loads back, on real results computed on tiny models."""

import json
import shutil

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from tl_localize import (
    BrainData,
    LocalizeError,
    brain_alignment,
    check_attribution,
    compare_ablation,
    evaluate,
    localize,
    reliability,
    unit_attribution,
)
from tl_localize.attribution import Attribution, AttributionCheck
from tl_localize.brain import BrainAlignment
from tl_localize.compare import AblationComparison
from tl_localize.localize import Localization
from tl_localize.protocol import Result
from tl_localize.reliability import LocalizerPower
from tl_localize.results import RESULT_KINDS, load_result
from tl_localize.study import Study, StudyResult, run_study
from tl_localize.tasks import Task

KINDS = {
    "localization": Localization,
    "ablation": AblationComparison,
    "brain alignment": BrainAlignment,
    "attribution": Attribution,
    "attribution check": AttributionCheck,
    "localizer power": LocalizerPower,
    "study": StudyResult,
}


@pytest.fixture(scope="module")
def made(tiny, toy_contrast, toy_pairs):
    """One result of each kind but the study, computed on the tiny model."""
    loc = localize(tiny, toy_contrast, top=6, progress=False)
    pairs = toy_pairs[:3]

    task = Task(  # a continuous metric: no chance level, so the effect is stated
        "pairs",
        load=lambda: pairs,
        score=lambda model, items, **kw: evaluate.minimal_pairs(model, items, **kw),
        metric="logprob",
        column="logprob_good",
    )
    comparison = compare_ablation(
        tiny, loc, [task], n_random=2, match="uniform", n_boot=100, progress=False
    )
    rng = np.random.default_rng(0)
    words = "the a cat dog ran sat on mat big red fox owl hen".split()
    sentences = list(dict.fromkeys(" ".join(rng.choice(words, size=5)) for _ in range(60)))[:40]
    data = BrainData.from_frame(
        pd.DataFrame({"Sentence": sentences, "EffectSize": rng.normal(size=len(sentences))})
    )
    alignment = brain_alignment(
        tiny, loc, data, n_random=2, match="uniform", folds=4, n_boot=100, n_permutations=20,
        progress=False,
    )  # fmt: skip
    attribution = unit_attribution(tiny, "resid_post", pairs, progress=False)
    power = reliability(tiny, toy_contrast, top=6, sizes=[2, 4], n_splits=2, progress=False)
    check = check_attribution(tiny, "resid_post", pairs, n_units=6, n_items=3, progress=False)
    return {
        "attribution check": check,
        "localization": loc,
        "ablation": comparison,
        "brain alignment": alignment,
        "attribution": attribution,
        "localizer power": power,
    }


STIMULI = ["the cat sat on the mat", "a dog ran in the park", "we saw a red fox",
           "the hen laid an egg", "my owl sleeps all day", "the cow ate the grass"]  # fmt: skip
JUNK = ["zq vbk qqp", "plo fwe zzt", "xxv qql mmp", "brq tts vvn", "kkl zzr oop", "fft yyq"]


@pytest.fixture(scope="module")
def study(tiny_hf, tmp_path_factory):
    """A finished study of one tiny model (a local HF folder): localize, evaluate."""
    folder = tmp_path_factory.mktemp("study")
    frame = pd.DataFrame({"text": STIMULI + JUNK, "condition": ["S"] * 6 + ["N"] * 6})
    frame.to_csv(folder / "small.csv", index=False)
    spec = {
        "name": "protocol-study",
        "models": [{"label": "llama", "spec": str(tiny_hf["llama"])}],
        "networks": [{"name": "lang", "contrast": str(folder / "small.csv"), "positive": "S",
                      "negative": "N", "top": [0.05]}],
        "ablation": {"n_random": 1, "n_boot": 100, "match": ["uniform"]},
        "tasks": {"builtin": {"n_per_paradigm": 1}},
    }  # fmt: skip
    return run_study(Study.from_dict(spec), folder / "out", progress=False)


@pytest.fixture(params=list(KINDS))
def result(request, made, study):
    kind = request.param
    return kind, (study if kind == "study" else made[kind])


def test_the_registry_names_every_result_type():
    assert set(RESULT_KINDS) == set(KINDS)


def _facts(kind, result):
    """Numbers the summary must state and facts the card must show, read from the result."""
    if kind == "localization":
        n = f"{len(result.units):,}"
        return [n], ["Localization", f"{n} of {result.units.n_units:,}", "toy: words &gt; junk"]
    if kind == "ablation":
        selected = result.table[result.table["set"] == "selected"].iloc[0]
        change = f"{abs(selected['change_pct']):.1f}%"
        return [change, f"{int(selected['n_units'])} selected units"], [
            "Ablation comparison", "zero", "pairs", "2 per kind of uniform"
        ]  # fmt: skip
    if kind == "brain alignment":
        r = f"{result.table['r'].iloc[0]:.3f}"
        return [f"r = {r}"], ["Brain alignment", "selected (1)", "random (2)", "folds", r]
    if kind == "attribution":
        best = result.to_frame().nlargest(1, "patch_abs").iloc[0]
        unit = f"L{int(best['layer'])}.{int(best['unit'])}"
        return [unit, f"{best['patch_abs']:.3g}"], ["Attribution", unit, "3 pairs"]
    if kind == "attribution check":
        r = f"{result.pearson:.2f}"
        return [r, "6 units", "3 pairs"], ["Attribution check", "6 units (top, random), 3 pairs"]
    if kind == "localizer power":
        last = result.table.iloc[-1]
        return [f"{last['dice']:.2f}"], ["Localizer power", "8 stimuli per condition"]
    assert kind == "study"
    status = result.status()
    return [f"{len(status)} jobs"], ["Study", "protocol-study", "llama", f"{len(status)} done"]


def test_each_result_holds_to_the_protocol(result, tiny, tmp_path):
    kind, value = result
    assert isinstance(value, Result) and isinstance(value, KINDS[kind])
    numbers, card_facts = _facts(kind, value)
    summary = value.summary()
    assert summary and all(n in summary for n in numbers), (numbers, summary)
    card = value._repr_html_()
    assert all(fact in card for fact in card_facts), card_facts
    fig = value.plot()
    assert fig.axes
    plt.close(fig)

    folder = value.save(tmp_path / "saved")
    record = json.loads((folder / "record.json").read_text())
    assert record["tl_localize"]["kind"] == kind
    assert isinstance(record["config"], dict) and record["config"]
    assert "torch" in record["versions"] and record["summary"] == summary
    if kind == "study":
        assert record["models"]["llama"]["n_layers"] >= 1
    else:
        assert record["model"]["model"] == "tiny" and record["model"]["fingerprint"]

    back = KINDS[kind].load(folder)
    pd.testing.assert_frame_equal(back.to_frame(), value.to_frame(), check_dtype=False)
    assert back.summary() == summary
    again = load_result(folder)
    assert type(again) is KINDS[kind]
    pd.testing.assert_frame_equal(again.to_frame(), value.to_frame(), check_dtype=False)
    if kind != "study":
        KINDS[kind].load(folder, model=tiny)  # its own model passes
        value.save(folder, force=True)  # every file it writes is one --force may replace


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "study"])
def test_a_result_refuses_another_model(kind, made, make_tiny, tmp_path):
    folder = made[kind].save(tmp_path / "saved")
    other = make_tiny(seed=1)  # same name and shape, other weights
    with pytest.raises(LocalizeError, match="other weights|computed for model"):
        KINDS[kind].load(folder, model=other)


@pytest.mark.parametrize("kind", list(KINDS)[1:])
def test_a_loader_refuses_another_kinds_folder(kind, made, tmp_path):
    folder = made["localization"].save(tmp_path / "loc", figure=False)
    with pytest.raises(LocalizeError, match=r"record\.json is the record of a localization, not"):
        KINDS[kind].load(folder)


@pytest.mark.parametrize("kind", ["ablation", "brain alignment", "localizer power"])
def test_a_record_without_its_kind_or_config_is_refused(kind, made, tmp_path):
    folder = made[kind].save(tmp_path / "saved")
    path = folder / "record.json"
    record = json.loads(path.read_text())
    unmarked = tmp_path / "unmarked"
    shutil.copytree(folder, unmarked)
    (unmarked / "record.json").write_text(json.dumps({**record, "tl_localize": None}))
    with pytest.raises(LocalizeError, match="carries no kind"):
        KINDS[kind].load(unmarked)
    with pytest.raises(LocalizeError, match="carries no kind"):
        load_result(unmarked)
    path.write_text(json.dumps({k: v for k, v in record.items() if k != "config"}))
    with pytest.raises(LocalizeError, match="config"):
        KINDS[kind].load(folder)


def test_a_damaged_prediction_file_is_refused_without_unpickling(made, tmp_path):
    folder = made["brain alignment"].save(tmp_path / "saved")
    with open(folder / "predictions.npz", "wb") as handle:  # a pickled object array
        np.save(handle, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(LocalizeError, match="predictions.npz is damaged"):
        BrainAlignment.load(folder)
