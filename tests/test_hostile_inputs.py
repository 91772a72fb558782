"""Hostile input to the API (fast tier, tiny models): every argument a user can get wrong
(contrasts, settings, models, task data, brain data, units) ends in ONE LocalizeError that
names it, and changes nothing on disk; random stimuli and `top` give a localization or a
LocalizeError. The shared working folder and checks: tests/_hostile.py."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import partial as P
from typing import Any

import _hostile
import numpy as np
import pandas as pd
import pytest
import torch
from _hostile import (
    LATIN1,
    MALFORMED,
    TEXT_COLUMNS,
    TWO,
    Work,
    _brain,
    _pairs_jsonl,
    check_api_error,
    item,
    suite,
    truncated_gguf,
)
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tl_localize import (
    BrainData,
    Contrast,
    Localization,
    LocalizeError,
    Units,
    brain_alignment,
    compare_ablation,
    evaluate,
    generation_sample,
    high_magnitude_units,
    layer_alignment,
    load_model,
    localize,
    profile,
    top_stimuli,
)
from tl_localize.brain import encoding_score
from tl_localize.data.pairs import load_blimp, read_pairs
from tl_localize.data.syntaxgym import load_suites
from tl_localize.localize import parse_top, resolve_top, significance
from tl_localize.tasks import prepare_tasks

work = _hostile.work  # the fixtures: the working folder and the guard against loading a model
no_model = _hostile.no_model


# Each API case: (id, a function of (work, tiny) that writes the case's input files and
# returns the call that must raise LocalizeError, a text the message must hold or None).
API_CASES: list[tuple[str, Callable[[Work, Any], Callable[[], Any]], str | None]] = [
    # contrasts
    (
        "contrast-text-as-a-string",
        lambda w, m: P(Contrast, "c", {"a": "abc", "b": TWO["b"]}, "a", "b"),
        "list of texts",
    ),
    (
        "contrast-one-text",
        lambda w, m: P(Contrast, "c", {"a": ["x y"], "b": TWO["b"]}, "a", "b"),
        "one item",
    ),
    (
        "contrast-empty-text",
        lambda w, m: P(Contrast, "c", {"a": ["x", " "], "b": TWO["b"]}, "a", "b"),
        "item 1",
    ),
    (
        "contrast-not-text",
        lambda w, m: P(Contrast, "c", {"a": ["x", None], "b": TWO["b"]}, "a", "b"),
        "item 1",
    ),
    ("contrast-same-condition", lambda w, m: P(Contrast, "c", TWO, "a", "a"), "same condition"),
    ("contrast-unknown-condition", lambda w, m: P(Contrast, "c", TWO, "a", "z"), "'z'"),
    ("contrast-pooling", lambda w, m: P(Contrast, "c", TWO, "a", "b", pooling="max"), "max"),
    (
        "contrast-text-repeated",
        lambda w, m: P(Contrast, "c", {"a": ["x y"] * 5, "b": TWO["b"]}, "a", "b"),
        "'a' repeats",
    ),
    (
        "contrast-csv-empty",
        lambda w, m: P(Contrast.from_csv, w.write("e.csv", ""), positive="a", negative="b"),
        "e.csv",
    ),
    (
        "contrast-csv-header-only",
        lambda w, m: P(
            Contrast.from_csv, w.write("h.csv", TEXT_COLUMNS), positive="a", negative="b"
        ),
        "h.csv",
    ),
    (
        "contrast-csv-not-utf8",
        lambda w, m: P(Contrast.from_csv, w.write("l.csv", LATIN1), positive="a", negative="b"),
        "l.csv",
    ),
    (
        "contrast-csv-malformed",
        lambda w, m: P(Contrast.from_csv, w.write("m.csv", MALFORMED), positive="a", negative="b"),
        "m.csv",
    ),
    ("contrast-builtin-unknown", lambda w, m: P(Contrast.builtin, "vision"), "vision"),
    ("contrast-builtin-option", lambda w, m: P(Contrast.builtin, "md", size=3), "size"),
    # localize
    ("localize-unknown-contrast", lambda w, m: P(localize, m, "vision", progress=False), "vision"),
    *[
        (
            f"localize-top={top!r}",
            lambda w, m, top=top: P(
                localize, m, Contrast("c", TWO, "a", "b"), top=top, progress=False
            ),
            "top",
        )
        for top in (0, -1, 1.5, "1.5", "abc", "fdr:2", True, math.nan, 97, 1e-9, "perm:1")
    ],
    (
        "localize-site",
        lambda w, m: P(localize, m, Contrast("c", TWO, "a", "b"), site="neurons", progress=False),
        "neurons",
    ),
    (
        "localize-batch-size",
        lambda w, m: P(
            localize, m, Contrast("c", TWO, "a", "b"), top=2, batch_size=0, progress=False
        ),
        "batch_size",
    ),
    (
        "localize-seed",
        lambda w, m: P(localize, m, Contrast("c", TWO, "a", "b"), top=2, seed=-1, progress=False),
        "seed",
    ),
    (
        "localize-holdout-too-big",
        lambda w, m: P(
            localize, m, Contrast("c", TWO, "a", "b"), top=2, holdout=0.5, progress=False
        ),
        "holdout",
    ),
    (
        "localize-n-permutations",
        lambda w, m: P(
            localize,
            m,
            Contrast("c", TWO, "a", "b"),
            top="perm:0.05",
            n_permutations=5,
            progress=False,
        ),
        "n_permutations",
    ),
    (
        "localize-past-the-context",
        lambda w, m: P(
            localize,
            m,
            Contrast("c", {"a": ["x" * 100, "y z"], "b": TWO["b"]}, "a", "b"),
            top=2,
            progress=False,
        ),
        "context",
    ),
    (
        "localize-preset",
        lambda w, m: P(localize, m, Contrast("c", TWO, "a", "b"), preset="paper", progress=False),
        "paper",
    ),
    # models
    ("model-empty-gguf", lambda w, m: P(load_model, w.write("e.gguf", b"")), "e.gguf"),
    ("model-truncated-gguf", lambda w, m: P(load_model, truncated_gguf(w)), "trunc.gguf"),
    ("model-folder-not-a-model", lambda w, m: P(load_model, "mydata"), "mydata"),
    ("model-dtype", lambda w, m: P(load_model, "mydata", dtype="float8"), "float8"),
    # task data
    (
        "suite-missing-items",
        lambda w, m: P(load_suites, w.write("s.json", suite(items=None))),
        "'items'",
    ),
    (
        "suite-no-predictions",
        lambda w, m: P(load_suites, w.write("s.json", suite(predictions=[]))),
        "no predictions",
    ),
    (
        "suite-formula-does-not-parse",
        lambda w, m: P(
            load_suites, w.write("s.json", suite(predictions=[{"formula": "(2;%match% < 3"}]))
        ),
        "s.json",
    ),
    (
        "suite-formula-names-no-condition",
        lambda w, m: P(
            load_suites, w.write("s.json", suite(predictions=[{"formula": "(2;%a%) < (2;%b%)"}]))
        ),
        "'a'",
    ),
    (
        "suite-repeated-item-number",
        lambda w, m: P(load_suites, w.write("s.json", suite(items=[item(1), item(1)]))),
        "item_number 1",
    ),
    (
        "suite-region-number-not-a-number",
        lambda w, m: P(load_suites, w.write("s.json", suite(items=[item(1, "one")]))),
        "region_number",
    ),
    ("suite-not-json", lambda w, m: P(load_suites, w.write("s.json", "{")), "s.json"),
    (
        "suites-given-damaged",
        lambda w, m: P(evaluate.syntaxgym, m, {"agr": {"items": []}}),
        "predictions",
    ),
    ("suites-given-none", lambda w, m: P(evaluate.syntaxgym, m, {}), "empty"),
    (
        "blimp-bad-json-line",
        lambda w, m: P(
            load_blimp,
            w.write("bl/x.jsonl", '{"sentence_good": "a b", "sentence_bad": "b a"}\n{\n').parent,
        ),
        "line 2",
    ),
    (
        "blimp-no-paradigms",
        lambda w, m: P(
            load_blimp,
            w.write("bl/x.jsonl", '{"sentence_good": "a b", "sentence_bad": "b a"}\n').parent,
            paradigms=[],
        ),
        "paradigms",
    ),
    (
        "blimp-n-per-paradigm",
        lambda w, m: P(
            load_blimp,
            w.write("bl/x.jsonl", '{"sentence_good": "a b", "sentence_bad": "b a"}\n').parent,
            n_per_paradigm=0,
        ),
        "n_per_paradigm",
    ),
    (
        "pairs-identical",
        lambda w, m: P(
            read_pairs, w.write("same.csv", "sentence_good,sentence_bad\nthe dog,the dog \n")
        ),
        "same text",
    ),
    ("pairs-not-objects", lambda w, m: P(read_pairs, _pairs_jsonl(w)), "line 2"),
    (
        "pairs-not-text",
        lambda w, m: P(read_pairs, w.write("n.csv", "sentence_good,sentence_bad\n1,2\n")),
        "sentence_good",
    ),
    ("tasks-unknown", lambda w, m: P(prepare_tasks, ["gsm8k"]), "gsm8k"),
    ("tasks-missing-data", lambda w, m: P(prepare_tasks, ["syntaxgym"]), "syntaxgym="),
    (
        "tasks-arithmetic-none",
        lambda w, m: P(prepare_tasks, ["arithmetic"], n_per_paradigm=0),
        "n_per_paradigm",
    ),
    (
        "tasks-perplexity-empty-text",
        lambda w, m: P(prepare_tasks, ["perplexity"], texts=["a", ""]),
        "Text 1",
    ),
    # evaluations with nothing or nonsense to score
    (
        "arithmetic-no-problems",
        lambda w, m: P(
            evaluate.arithmetic, m, pd.DataFrame(columns=["a", "op", "b"]), progress=False
        ),
        "no rows",
    ),
    (
        "arithmetic-unknown-operator",
        lambda w, m: P(
            evaluate.arithmetic,
            m,
            pd.DataFrame({"a": [3], "op": ["*"], "b": [4]}),
            shots=0,
            progress=False,
        ),
        "'*'",
    ),
    (
        "arithmetic-operand-text",
        lambda w, m: P(
            evaluate.arithmetic,
            m,
            pd.DataFrame({"a": ["x"], "op": ["+"], "b": [4]}),
            shots=0,
            progress=False,
        ),
        "row 0",
    ),
    (
        "arithmetic-n-per-level",
        lambda w, m: P(evaluate.arithmetic, m, n_per_level=0),
        "n_per_level",
    ),
    (
        "false-belief-answers-as-text",
        lambda w, m: P(
            evaluate.false_belief,
            m,
            pd.DataFrame(
                {"story": ["Ann hid it."], "statement": ["It is hidden."], "answer": ["False"]}
            ),
            progress=False,
        ),
        "'False'",
    ),
    ("minimal-pairs-none", lambda w, m: P(evaluate.minimal_pairs, m, [], progress=False), None),
    (
        "perplexity-empty-text",
        lambda w, m: P(evaluate.perplexity, m, [""], progress=False),
        "empty",
    ),
    # brain data
    (
        "brain-constant-response",
        lambda w, m: P(
            BrainData.from_frame,
            pd.DataFrame({"Sentence": ["a b", "c d", "e f"], "EffectSize": [2.0] * 3}),
        ),
        "EffectSize",
    ),
    (
        "brain-all-missing",
        lambda w, m: P(
            BrainData.from_frame,
            pd.DataFrame({"Sentence": ["a b", "c d"], "EffectSize": [None, "n/a"]}),
        ),
        "EffectSize",
    ),
    (
        "brain-one-sentence-repeated",
        lambda w, m: P(
            BrainData.from_frame,
            pd.DataFrame({"Sentence": ["the cat sat"] * 6, "EffectSize": np.arange(6.0)}),
        ),
        "same sentence",
    ),
    (
        "brain-unknown-column",
        lambda w, m: P(BrainData.from_csv, "brain.csv", responses=["BOLD"]),
        "BOLD",
    ),
    (
        "brain-fewer-sentences-than-folds",
        lambda w, m: P(brain_alignment, m, w.loc, _brain(6), folds=10, progress=False),
        "folds",
    ),
    (
        "brain-fewer-groups-than-folds",
        lambda w, m: P(
            brain_alignment, m, w.loc, _brain(g=[i % 3 for i in range(12)]), folds=5, progress=False
        ),
        "groups",
    ),
    (
        "brain-n-boot",
        lambda w, m: P(brain_alignment, m, w.loc, _brain(), folds=3, n_boot=0, progress=False),
        "n_boot",
    ),
    (
        "layer-alignment-n-boot",
        lambda w, m: P(layer_alignment, m, _brain(), folds=3, n_boot=0, progress=False),
        "n_boot",
    ),
    (
        "encoding-constant-features",
        lambda w, m: P(encoding_score, np.ones((12, 4)), _brain(), folds=3),
        "same for every",
    ),
    # ablation and units
    (
        "compare-n-boot",
        lambda w, m: P(compare_ablation, m, w.loc, n_boot=10, progress=False),
        "n_boot",
    ),
    (
        "compare-n-random",
        lambda w, m: P(compare_ablation, m, w.loc, n_random=-1, progress=False),
        "n_random",
    ),
    (
        "compare-fraction-selects-none",
        lambda w, m: P(compare_ablation, m, w.loc, fractions=[1e-9], progress=False),
        "selects none",
    ),
    (
        "compare-method",
        lambda w, m: P(compare_ablation, m, w.loc, method="noise", progress=False),
        "noise",
    ),
    (
        "compare-empty-units",
        lambda w, m: P(
            compare_ablation,
            m,
            w.loc.units.with_mask(torch.zeros(3, 32, dtype=torch.bool)),
            progress=False,
        ),
        "empty",
    ),
    ("random-like-seed", lambda w, m: P(w.loc.units.random_like, -1), "seed"),
    (
        "random-like-nan-magnitude",
        lambda w, m: P(w.loc.units.random_like, 0, "magnitude", torch.full((3, 32), math.nan)),
        "NaN",
    ),
    (
        "units-site",
        lambda w, m: P(Units, torch.zeros(2, 2, dtype=torch.bool), "neurons", "m"),
        "neurons",
    ),
    ("units-not-a-mask", lambda w, m: P(Units, torch.zeros(2, 2), "resid_post", "m"), "bool"),
    (
        "high-magnitude-factor",
        lambda w, m: P(high_magnitude_units, w.loc.units, w.loc.stats["magnitude"], factor=0),
        "factor",
    ),
    (
        "generation-no-tokens",
        lambda w, m: P(generation_sample, m, {"intact": None}, max_new_tokens=0),
        "max_new_tokens",
    ),
    ("top-stimuli-k", lambda w, m: P(top_stimuli, m, w.loc.units, ["a b", "c d"], k=0), "k must"),
    (
        "profile-unknown-condition",
        lambda w, m: P(
            profile, m, w.loc, Contrast("c", TWO, "a", "b"), conditions=["z"], progress=False
        ),
        "'z'",
    ),
]


@pytest.mark.parametrize("call, names", [pytest.param(c, n, id=i) for i, c, n in API_CASES])
def test_api_raises_one_localize_error(call, names, work, tiny):
    check_api_error(call, names, work, tiny)


def test_lenient_inputs_that_mean_one_thing(tiny, toy_contrast, work):
    """A string where a list of names is expected means that one name."""
    folder = work.write("bl/agr.jsonl", '{"sentence_good": "a b", "sentence_bad": "b a"}\n')
    assert list(load_blimp(folder.parent, paradigms="agr")["paradigm"]) == ["agr"]
    frame = profile(tiny, work.loc, toy_contrast, conditions="words", progress=False)
    assert list(frame["condition"]) == ["words"]


def test_tokens_past_the_context_of_a_pair_or_text(tiny):
    with pytest.raises(LocalizeError, match="longer than the model's context"):
        evaluate.minimal_pairs(tiny, [("a " * 40, "b " * 40)], progress=False)
    with pytest.raises(LocalizeError, match="longer than the model's context"):
        evaluate.perplexity(tiny, ["x" * 70], progress=False)


# -- property: random stimuli and `top` ------------------------------------------------------
TEXTS = st.one_of(
    st.text(max_size=70),
    st.text(alphabet="ab \t\n", max_size=8),
    st.sampled_from(["", " ", "the cat sat", "the cat sat ", "zq vb kk", "x" * 63, "x" * 64]),
)
SENTENCES = ["the cat sat", "a dog ran far", "we go home", "my owl flies", "é ü 日本", "🙂 ok"]
CONDITIONS = st.one_of(
    st.lists(TEXTS, max_size=6),
    st.lists(st.sampled_from(SENTENCES), min_size=2, max_size=6),  # mostly usable
)
TOPS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1.2),
    st.integers(min_value=-3, max_value=120),
    st.booleans(),
    st.sampled_from(["1%", "abc", "fdr:0.05", "fdr:1", "0.5", "10", "", " 5 ", "-1", "200%"]),
)


@settings(max_examples=60, deadline=None)
@given(
    positive=CONDITIONS,
    negative=CONDITIONS,
    top=TOPS,
    pooling=st.sampled_from(["last", "mean"]),
)
def test_any_stimuli_and_top_give_a_localization_or_a_localize_error(
    tiny, positive, negative, top, pooling
):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            contrast = Contrast("h", {"pos": positive, "neg": negative}, "pos", "neg", pooling)
            loc = localize(tiny, contrast, top=top, progress=False)
        except LocalizeError as error:
            assert str(error)
            event("LocalizeError")
            return
    event("Localization")
    assert all(issubclass(w.category, UserWarning) for w in caught)
    assert isinstance(loc, Localization)
    mask, t = loc.units.mask, loc.stats["t"]
    assert mask.dtype == torch.bool and tuple(mask.shape) == (3, 32)
    assert all(tuple(v.shape) == (3, 32) for v in loc.stats.values())
    parsed = parse_top(top)
    test = significance(parsed)
    if test is None:
        k = resolve_top(parsed, mask.numel())
        assert len(loc.units) == k
        # NaN t is never chosen over a number
        assert int(t[mask].isnan().sum()) <= max(0, k - int((~t.isnan()).sum()))
    else:
        assert torch.equal(mask, (loc.stats["q"] < test[1]) & (t.nan_to_num(-math.inf) > 0))
    assert loc.record["contrast"]["sizes"] == {"pos": len(positive), "neg": len(negative)}
    if not torch.isfinite(t).any():
        assert any("No unit tells" in str(w.message) for w in caught)
