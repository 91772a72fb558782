import json

import pandas as pd
import pytest

from tl_localize import LocalizeError, evaluate
from tl_localize.evaluate import parse_formula


def _suite(path, items, predictions):
    suite = {"meta": {"name": path.stem}, "region_meta": {}, "predictions": predictions}
    suite["items"] = items
    path.write_text(json.dumps(suite))
    return path


def _item(number, **conditions):
    return {
        "item_number": number,
        "conditions": [
            {
                "condition_name": name,
                "regions": [{"region_number": i + 1, "content": c} for i, c in enumerate(regions)],
            }
            for name, regions in conditions.items()
        ],
    }


# -- formula language ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("(1;%a%) < (1;%b%)", True),
        ("((1;%a%) < (1;%b%)) & ((2;%a%) > (2;%b%))", False),
        ("((1;%a%) < (1;%b%)) | ((2;%a%) > (2;%b%))", True),
        ("(1;%a%) + 2 > (1;%b%)", True),
        ("(1;%b%) - (1;%a%) = 1.0", True),
        ("(1;%b%) - (1;%a%) = 1.01", False),
        ("(1;%b%) - (1;%a%) = 1.0005", True),
        ("((2;%a%) + (1;%a%)) = ((1;%b%) + 1)", True),
    ],
)
def test_formula_evaluation(formula, expected):
    values = {(1, "a"): 2.0, (1, "b"): 3.0, (2, "a"): 2.0, (2, "b"): 4.0}
    assert parse_formula(formula).evaluate(values) is expected


@pytest.mark.parametrize(
    ("formula", "column"),
    [("(1;%a%) < ", 10), ("((1;%a%) < (1;%b%)", 18), ("(1;%a%) < $ 3", 10), ("(1;%a%) (2;%b%)", 8)],
)
def test_formula_syntax_errors_say_where(formula, column):
    with pytest.raises(LocalizeError, match=rf"character {column}") as info:
        parse_formula(formula)
    assert "\n  " + " " * column + "^" in str(info.value)


def test_formula_regions():
    f = parse_formula("((7;%match sing%) < (7;%mismatch_sing%)) & ((7;%x%) = 2)")
    assert f.regions() == [(7, "match sing"), (7, "mismatch_sing"), (7, "x")]


# -- SyntaxGym on a tiny model: invariants of the region bookkeeping -----------------------
def test_region_surprisals_partition_the_sentence(tiny, tmp_path):
    items = [
        _item(1, a=["the cat", "sleeps", "."], b=["the", "cat sleeps", "."]),
        _item(2, a=["a dog", "", "runs", "."], b=["a", "", "dog runs", "."]),
    ]
    predictions = [
        {
            "type": "formula",
            "formula": "((1;%a%) + (2;%a%) + (3;%a%)) = ((1;%b%) + (2;%b%) + (3;%b%))",
        },
        {"type": "formula", "formula": "(1;%a%) > (1;%b%)"},
    ]
    path = _suite(tmp_path / "partition.json", items, predictions)
    result = evaluate.syntaxgym(tiny, path, progress=False)
    assert result["correct"].all(), result
    assert list(result.columns) == [
        "suite",
        "item_number",
        "prediction_0",
        "prediction_1",
        "correct",
    ]
    # an empty region has surprisal 0
    zero = [{"type": "formula", "formula": "(2;%a%) = 0"}]
    path2 = _suite(tmp_path / "empty.json", items[1:], zero)
    assert evaluate.syntaxgym(tiny, path2, progress=False)["correct"].all()


def test_syntaxgym_bad_suites(tiny, tmp_path):
    items = [_item(1, a=["x", "y"], b=["x", "z"])]
    _suite(tmp_path / "cond.json", items, [{"formula": "(1;%a%) < (1;%c%)"}])
    with pytest.raises(LocalizeError, match=r"item 1: the formula .* names condition 'c'"):
        evaluate.syntaxgym(tiny, tmp_path / "cond.json", progress=False)
    _suite(tmp_path / "region.json", items, [{"formula": "(3;%a%) < (1;%b%)"}])
    with pytest.raises(LocalizeError, match=r"names region 3; the condition has regions \[1, 2\]"):
        evaluate.syntaxgym(tiny, tmp_path / "region.json", progress=False)
    _suite(tmp_path / "syntax.json", items, [{"formula": "(1;%a%) <"}])
    with pytest.raises(LocalizeError, match="Cannot parse formula"):
        evaluate.syntaxgym(tiny, tmp_path / "syntax.json", progress=False)
    with pytest.raises(LocalizeError, match=r"Unknown suite 'nope'. Suites in .*\['cond'"):
        evaluate.syntaxgym(tiny, tmp_path, names=["nope"], progress=False)


# -- minimal pairs and perplexity on a tiny model --------------------------------------
def test_minimal_pairs_scoring(tiny):
    pairs = pd.DataFrame(
        {
            "pair_id": [10, 11],
            "sentence_good": ["the cat sleeps", "dogs run"],
            "sentence_bad": ["the cat sleep", "dogs runs"],
        }
    )
    result = evaluate.minimal_pairs(tiny, pairs, progress=False)
    assert result["pair_id"].tolist() == [10, 11]
    assert (result["correct"] == (result["logprob_good"] > result["logprob_bad"])).all()
    ppl = evaluate.perplexity(tiny, ["the cat sleeps"], progress=False)
    # summed log-probability and perplexity agree: n_tokens * nll == -logprob
    assert ppl["n_tokens"][0] == len("the cat sleeps")
    assert ppl["nll"][0] * ppl["n_tokens"][0] == pytest.approx(-result["logprob_good"][0], rel=1e-5)
    tuples = evaluate.minimal_pairs(tiny, [("a b", "b a")], progress=False)
    assert list(tuples.columns[:2]) == ["sentence_good", "sentence_bad"]


def test_minimal_pair_bad_input(tiny, tmp_path):
    with pytest.raises(LocalizeError, match="Pair 1: sentence_bad is empty"):
        evaluate.minimal_pairs(tiny, [("a b", "b a"), ("c d", "")], progress=False)
    with pytest.raises(LocalizeError, match="need 'sentence_good' and 'sentence_bad'"):
        evaluate.minimal_pairs(tiny, pd.DataFrame({"good": ["a"]}), progress=False)
    (tmp_path / "p1.jsonl").write_text(
        '{"sentence_good": "a b", "sentence_bad": "b a"}\n{"sentence_good": "oops",\n'
    )
    with pytest.raises(LocalizeError, match=r"p1\.jsonl, line 2: not valid JSON"):
        evaluate.blimp(tiny, tmp_path, progress=False)
    with pytest.raises(LocalizeError, match=r"Unknown BLiMP paradigm 'p9'.*\['p1'\]"):
        evaluate.blimp(tiny, tmp_path, paradigms=["p9"], progress=False)


def test_builtin_pairs_suite():
    pairs = evaluate.builtin_pairs()
    assert 300 <= len(pairs) <= 400
    assert set(pairs["phenomenon"]) == {
        "agreement", "anaphora", "npi", "filler_gap", "argument_structure", "islands",
    }  # fmt: skip
    assert not pairs.duplicated(["paradigm", "pair_id"]).any()
    assert (pairs["sentence_good"] != pairs["sentence_bad"]).all()


# -- formula grammar: trees, precedence, errors -------------------------------------------
def _r(number, condition):
    return ("region", number, condition)


def _n(value):
    return ("num", float(value))


def _neg(node):
    return ("-", _n(0), node)


@pytest.mark.parametrize(
    ("formula", "tree"),
    [
        # | loosest, then &, then comparisons, then + -
        (
            "(1;%a%) + 1 > (1;%b%) & (1;%c%) < (1;%d%) | (1;%e%) = (1;%f%)",
            ("|", ("&", (">", ("+", _r(1, "a"), _n(1)), _r(1, "b")),
                   ("<", _r(1, "c"), _r(1, "d"))),
             ("=", _r(1, "e"), _r(1, "f"))),
        ),
        (
            "(1;%a%) < 2 | (1;%b%) > 3 & (1;%c%) = 4",
            ("|", ("<", _r(1, "a"), _n(2)),
             ("&", (">", _r(1, "b"), _n(3)), ("=", _r(1, "c"), _n(4)))),
        ),
        (
            "((1;%a%) < 2 | (1;%b%) > 3) & (1;%c%) = 4",
            ("&", ("|", ("<", _r(1, "a"), _n(2)), (">", _r(1, "b"), _n(3))),
             ("=", _r(1, "c"), _n(4))),
        ),
        # + and - are left-associative
        ("1 - 2 - 3 < 0", ("<", ("-", ("-", _n(1), _n(2)), _n(3)), _n(0))),
        ("1 - 2 + 3 > 0", (">", ("+", ("-", _n(1), _n(2)), _n(3)), _n(0))),
        (
            "(1;%a%) - ((1;%b%) - (1;%c%)) > 0",
            (">", ("-", _r(1, "a"), ("-", _r(1, "b"), _r(1, "c"))), _n(0)),
        ),
        # unary minus binds tightest and nests
        ("-(1;%a%) < 2", ("<", _neg(_r(1, "a")), _n(2))),
        ("- - 1 < 2", ("<", _neg(_neg(_n(1))), _n(2))),
        ("(1;%a%) < -(2;%b%) - 3", ("<", _r(1, "a"), ("-", _neg(_r(2, "b")), _n(3)))),
        # parentheses, spaces and numbers
        ("((((1;%a%)))) < 2.5", ("<", _r(1, "a"), _n(2.5))),
        ("( 7 ; %match sing% ) = 12", ("=", _r(7, "match sing"), _n(12))),
        ("(10;%a%)<(2;%b_c%)", ("<", _r(10, "a"), _r(2, "b_c"))),
    ],
)  # fmt: skip
def test_formula_trees(formula, tree):
    assert parse_formula(formula).tree == tree


@pytest.mark.parametrize(
    ("formula", "column", "what"),
    [
        ("(1;%a% < 2", 7, "expected ')'; found '<'"),  # unclosed region reference
        ("(1;%a%) < (1;%b%) &", 19, "the formula ends too early"),  # dangling operator
        ("(1;%a%) + < 2", 10, "found '<'"),  # operator where an operand belongs
        ("", 0, "the formula ends too early"),
        ("(1;%a%) < (1;%b%) < 3", 18, "found '<'"),  # comparisons do not chain
        ("(1;%a%) < 2)", 11, "found ')'"),
        ("(1;%%) < 2", 3, "found '%'"),  # a region needs a condition name
    ],
)
def test_formula_more_syntax_errors(formula, column, what):
    with pytest.raises(LocalizeError) as info:
        parse_formula(formula)
    message = str(info.value)
    assert message.startswith(f"Cannot parse formula at character {column} (")
    assert what in message.splitlines()[0]
    assert message.endswith(f"\n  {formula}\n  " + " " * column + "^")


@pytest.mark.parametrize("formula", ["3", "((1;%a%))", "(1;%a%) + 2 - (1;%b%)"])
def test_formula_that_is_a_number_fails_at_parse_time(formula):
    with pytest.raises(LocalizeError, match="is a number, not a comparison"):
        parse_formula(formula)


def test_formula_regions_keep_duplicates_and_order():
    f = parse_formula("(2;%b%) - (1;%a%) = (2;%b%) | -(3; %c d %) > 0")
    assert f.regions() == [(2, "b"), (1, "a"), (2, "b"), (3, "c d")]
    values = {(1, "a"): 1.0, (2, "b"): 1.0, (3, "c d"): 5.0}
    assert f.evaluate(values) is False  # 0 = 1 fails, -5 > 0 fails
    values[(1, "a")] = 0.0
    assert f.evaluate(values) is True


def test_formula_nested_too_deeply_is_a_localize_error():
    assert parse_formula("(" * 10 + "(1;%a%)" + ")" * 10 + " < 2").tree[1] == _r(1, "a")
    with pytest.raises(LocalizeError, match="nests parentheses too deeply"):
        parse_formula("(" * 500 + "(1;%a%)" + ")" * 500 + " < 2")


def test_blimp_drops_its_identical_pairs_with_a_warning(tmp_path):
    """The published BLiMP holds a few pairs whose sentences are the same text (passive_1
    lines 325 and 811, for example): a full folder loads, without them, and says so."""
    from tl_localize.data.pairs import load_blimp

    rows = [{"sentence_good": "the dog ran", "sentence_bad": "the dog runned"},
            {"sentence_good": "a cat was seen", "sentence_bad": "a cat was seen "},
            {"sentence_good": "we saw it", "sentence_bad": "we seen it"}]  # fmt: skip
    (tmp_path / "p1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.warns(UserWarning, match=r"dropped 1 pair.*p1.jsonl line 2"):
        frame = load_blimp(tmp_path)
    assert list(frame["sentence_good"]) == ["the dog ran", "we saw it"]
