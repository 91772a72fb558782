"""Hostile data (fast tier, tiny models): tables with missing or non-finite values, data
that carry no information, and the loaders' leftovers (strict decoding, strict loading of
saved attributions, wrong types given to the public constructors).

Every case writes its input files into a working folder (the ``work`` fixture of
``test_hostile``: the user's current folder under a root that also holds ``$HOME``), hashes
the whole root before and after, and asserts the exact error class, or warning, and a
fragment of its message. Rows are counted from 1: data rows of a CSV file (the header not
counted), positions of a DataFrame, lines of a JSON-lines file.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from functools import partial as P
from pathlib import Path
from typing import Any

import _hostile as hostile
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from tl_localize import Attribution, BrainData, Contrast, LocalizeError, Units, unit_attribution
from tl_localize.brain import encoding_score
from tl_localize.data.pairs import load_blimp, read_pairs
from tl_localize.data.stories import load_tomloc
from tl_localize.data.syntaxgym import load_suites

Work = hostile.Work
# the fixtures of tests/_hostile.py, shared: the working folder (with the saved localization
# of conftest's saved_loc), and the guard that fails a test loading a model before its
# arguments are checked
work = hostile.work
no_model = hostile.no_model

ZERO_WIDTH = "\u200b\u2060\ufeff"  # zero-width space, word joiner, byte-order mark
STIMULI = "text,condition\nthe cat sat,s\na dog ran,s\nthe owl flew,s\nzq vb,n\nkk pl,n\n"
BRAIN_HEADER = "Sentence,EffectSize,Group\n"


def brain_rows(n: int = 12, **replace: str) -> str:
    """A brain-data CSV of ``n`` rows; ``replace`` maps ``"{column}{row}"`` (row counted
    from 1) to the text written there, such as ``EffectSize3=""``."""
    rng = np.random.default_rng(0)
    lines = [BRAIN_HEADER.strip()]
    for row in range(1, n + 1):
        cells = {
            "Sentence": f"the bird number {row} sang",
            "EffectSize": f"{rng.normal():.4f}",
            "Group": str(row % 2),
        }
        for column in cells:
            cells[column] = replace.get(f"{column}{row}", cells[column])
        lines.append(",".join(cells.values()))
    return "\n".join(lines) + "\n"


def evlab(word: str) -> str:
    header = ",".join(f"stim{i}" for i in range(1, 15))
    words = ["THE", "DOG", "RAN", word, "OVER", "A", "HILL", "AND", "THEN", "IT", "SAT", "DOWN"]
    rows = [f"1,{','.join(words)},S", f"2,{','.join(['BLA'] * 12)},N"]
    return header + "\n" + "\n".join(rows) + "\n"


def tomloc(w: Work, story: str | bytes = "Ann put the cake in the box.\n") -> Path:
    """A tomloc folder of two false-belief and two false-photo items; ``story`` is item
    1b's story file."""
    for item in ("1b", "2b", "1p", "2p"):
        w.write(f"tom/{item}_story.txt", f"Story {item} has a dog in it.\n")
        w.write(f"tom/{item}_question.txt", f"The dog of {item} is brown.\n\nTrue  False\n")
    w.write("tom/1b_story.txt", story)
    return Path("tom")


def suite(content: Any) -> str:
    regions = [{"region_number": 1, "content": content}, {"region_number": 2, "content": content}]
    item = {
        "item_number": 1,
        "conditions": [
            {"condition_name": "match", "regions": regions},
            {"condition_name": "mismatch", "regions": regions},
        ],
    }
    return json.dumps(
        {"predictions": [{"formula": "(2;%match%) < (2;%mismatch%)"}], "items": [item]}
    )


def fold_constant_data(w: Work) -> BrainData:
    """Twelve sentences in two groups; group 0's responses are all 1.0, so with two folds
    one fold trains on that group alone (the column as a whole varies)."""
    replace = {f"EffectSize{row}": "1.0" for row in range(2, 13, 2)}  # rows of group 0
    return BrainData.from_csv(w.write("fold.csv", brain_rows(**replace)), groups="Group")


# -- saved attributions ------------------------------------------------------------------
@pytest.fixture(scope="session")
def saved_att(tiny, toy_pairs, tmp_path_factory):
    att = unit_attribution(tiny, "resid_post", toy_pairs, n_items=3, progress=False)
    return att.save(tmp_path_factory.mktemp("saved") / "att")


def att_copy(w: Work, source: Path, name: str = "att") -> Path:
    shutil.copytree(source, w.work / name)
    return Path(name)


def att_record(w: Work, source: Path, change: Callable[[dict], Any]) -> Path:
    path = att_copy(w, source)
    record = json.loads((w.work / path / "record.json").read_text())
    change(record)
    (w.work / path / "record.json").write_text(json.dumps(record))
    return path


def att_scores(w: Work, source: Path, change: Callable[[torch.Tensor], torch.Tensor]) -> Path:
    path = att_copy(w, source)
    file = w.work / path / "attribution.safetensors"
    meta = {"format": "tl_localize.attribution/1", "site": "resid_post", "model": "tiny"}
    scores = {k: change(v).contiguous() for k, v in load_file(str(file)).items()}
    save_file(scores, str(file), metadata=meta)
    return path


def loc_with_scores(w: Work, source: Path) -> Path:
    path = w.results("mixed")
    shutil.copy(source / "attribution.safetensors", w.work / path)
    shutil.copy(source / "items.csv", w.work / path)
    return path


def att_items(w: Work, source: Path, n: int) -> Path:
    path = att_copy(w, source)
    file = w.work / path / "items.csv"
    file.write_text("".join(file.read_text().splitlines(keepends=True)[: n + 1]))
    return path


# Each case: (id, a function of (work, saved attribution folder) that writes the case's
# input files and returns the call that must raise, the fragments its message must hold).
CASES: list[tuple[str, Callable[[Work, Path], Callable[[], Any]], tuple[str, ...]]] = [
    # missing values in the tables a loader reads
    (
        "contrast-csv-empty-text",
        lambda w, a: P(
            Contrast.from_csv,
            w.write("s.csv", STIMULI.replace("a dog ran", "")),
            positive="s",
            negative="n",
        ),
        ("s.csv", "column 'text' is missing or empty", "data row 2,", "dropna=True"),
    ),
    (
        "contrast-csv-invisible-text",
        lambda w, a: P(
            Contrast.from_csv,
            w.write("s.csv", STIMULI.replace("the owl flew", ZERO_WIDTH + " ")),
            positive="s",
            negative="n",
        ),
        ("s.csv", "column 'text'", "data row 3,"),
    ),
    (
        "contrast-csv-empty-condition",
        lambda w, a: P(
            Contrast.from_csv,
            w.write("s.csv", STIMULI.replace("zq vb,n", "zq vb,").replace("kk pl,n", "kk pl,")),
            positive="s",
            negative="n",
        ),
        ("s.csv", "column 'condition'", "data rows 4, 5"),
    ),
    (
        "contrast-frame-missing-text",
        lambda w, a: P(
            Contrast.from_frame,
            pd.read_csv(w.work / w.write("s.csv", STIMULI)).assign(
                text=["the cat sat", None, "the owl flew", "zq vb", "kk pl"]
            ),
            positive="s",
            negative="n",
        ),
        ("column 'text'", "row 2,"),
    ),
    (
        "contrast-frame-missing-condition",
        lambda w, a: P(
            Contrast.from_frame,
            pd.read_csv(w.work / w.write("s.csv", STIMULI)).assign(
                condition=["s", "s", "s", "n", np.nan]
            ),
            positive="s",
            negative="n",
        ),
        ("column 'condition'", "row 5,"),
    ),
    (
        "contrast-dropna-leaves-one-item",
        lambda w, a: P(
            Contrast.from_csv,
            w.write("s.csv", STIMULI.replace("kk pl", "")),
            positive="s",
            negative="n",
            dropna=True,
        ),
        ("'n' has one item", "at least two"),
    ),
    (
        "evlab-invisible-word",
        lambda w, a: P(Contrast.from_evlab_csv, w.write("ev/list1.csv", evlab(ZERO_WIDTH)).parent),
        ("list1.csv, line 2", "stim5 is missing or empty"),
    ),
    (
        "tomloc-invisible-story",
        lambda w, a: P(Contrast.from_tomloc, tomloc(w, ZERO_WIDTH + "\n \n")),
        ("1b_story.txt", "the story is empty"),
    ),
    (
        "suite-content-not-text",
        lambda w, a: P(load_suites, w.write("agr.json", suite(float("nan")))),
        ("agr.json, item 0, condition 0, region 0", "'content' is nan"),
    ),
    (
        "suite-invisible-sentence",
        lambda w, a: P(load_suites, w.write("agr.json", suite(ZERO_WIDTH))),
        ("Suite 'agr', item 1, condition 'match'", "every region is empty"),
    ),
    (
        "pairs-csv-empty-sentence",
        lambda w, a: P(
            read_pairs,
            w.write("p.csv", "sentence_good,sentence_bad\nthe dogs run,the dogs runs\n,a cat\n"),
        ),
        ("p.csv", "sentence_good is missing", "data row 2 (first: '')"),
    ),
    (
        "pairs-csv-blank-glyph",
        lambda w, a: P(
            read_pairs, w.write("p.csv", "sentence_good,sentence_bad\nthe dogs run,\u2800\n")
        ),
        ("p.csv", "sentence_bad is missing", "data row 1"),
    ),
    (
        "pairs-jsonl-missing-field",
        lambda w, a: P(
            read_pairs,
            w.write(
                "p.jsonl",
                '{"sentence_good": "a dog runs", "sentence_bad": "a dog run"}\n\n'
                '{"sentence_good": "the cats sit"}\n',
            ),
        ),
        ("p.jsonl", "sentence_bad is missing", "line 3 (first: nan)"),
    ),
    (
        "blimp-null-sentence",
        lambda w, a: P(
            load_blimp,
            w.write(
                "bl/agr.jsonl",
                '{"sentence_good": "a dog runs", "sentence_bad": "a dog run"}\n'
                '{"sentence_good": null, "sentence_bad": "the cat sit"}\n',
            ).parent,
        ),
        ("agr.jsonl", "sentence_good is missing", "line 2"),
    ),
    (
        "brain-csv-empty-response",
        lambda w, a: P(BrainData.from_csv, w.write("b.csv", brain_rows(EffectSize3=""))),
        ("b.csv", "'EffectSize' is missing or not a finite number", "data row 3 (first: '')"),
    ),
    (
        "brain-csv-infinite-response",
        lambda w, a: P(
            BrainData.from_csv, w.write("b.csv", brain_rows(EffectSize2="inf", EffectSize9="-inf"))
        ),
        ("b.csv", "'EffectSize'", "data rows 2, 9 (first: 'inf')", "--dropna"),
    ),
    (
        "brain-csv-text-response",
        lambda w, a: P(BrainData.from_csv, w.write("b.csv", brain_rows(EffectSize5="n/a"))),
        ("b.csv", "'EffectSize'", "data row 5 (first: 'n/a')"),
    ),
    (
        "brain-csv-invisible-sentence",
        lambda w, a: P(BrainData.from_csv, w.write("b.csv", brain_rows(Sentence4=ZERO_WIDTH))),
        ("b.csv", "column 'Sentence' is missing or empty", "data row 4"),
    ),
    (
        "brain-csv-missing-group",
        lambda w, a: P(BrainData.from_csv, w.write("b.csv", brain_rows(Group7="")), groups="Group"),
        ("b.csv", "column 'Group' is missing", "data row 7"),
    ),
    (
        "brain-frame-nan",
        lambda w, a: P(
            BrainData.from_frame,
            pd.read_csv(w.work / w.write("b.csv", brain_rows(EffectSize6="nan"))),
        ),
        ("The brain data", "'EffectSize'", "row 6 (first: nan)"),
    ),
    (
        "brain-built-with-nan",
        lambda w, a: P(
            BrainData, ["a b", "c d", "e f"], pd.DataFrame({"y": [1.0, np.inf, 2.0]}), name="x"
        ),
        ("BrainData 'x'", "'y' is missing or not a finite number in row 2", "dropna=True"),
    ),
    (
        "brain-built-with-invisible-sentence",
        lambda w, a: P(BrainData, ["a b", ZERO_WIDTH], pd.DataFrame({"y": [1.0, 2.0]})),
        ("'sentences' is missing or empty", "row 2"),
    ),
    (
        "brain-built-with-other-lengths",
        lambda w, a: P(BrainData, ["a b", "c d", "e f"], pd.DataFrame({"y": [1.0, 2.0]})),
        ("3 sentences, 2 response rows",),
    ),
    # data that carry no information
    (
        "brain-csv-constant-response",
        lambda w, a: P(
            BrainData.from_csv,
            w.write("b.csv", brain_rows(**{f"EffectSize{i}": "1.5" for i in range(1, 13)})),
        ),
        (
            "b.csv",
            "same value in every usable row",
        ),
    ),
    (
        "brain-fold-trains-on-a-constant",
        lambda w, a: P(
            encoding_score,
            np.random.default_rng(0).normal(size=(12, 4)),
            fold_constant_data(w),
            folds=2,
        ),
        ("Cross-validation fold 1 of 2", "same value of the response 'EffectSize'"),
    ),
    (
        "contrast-invisible-text",
        lambda w, a: P(
            Contrast, "c", {"a": ["the cat", ZERO_WIDTH], "b": ["zq vb", "kk pl"]}, "a", "b"
        ),
        ("condition 'a', item 1", "only invisible characters"),
    ),
    # strict decoding
    (
        "tomloc-not-utf8",
        lambda w, a: P(load_tomloc, tomloc(w, "Ann ate a cr\xeape.\n".encode("latin-1"))),
        ("1b_story.txt is not UTF-8 text (byte 12", "iconv"),
    ),
    # saved attributions, checked as strictly as saved localizations
    (
        "attribution-in-a-localization-folder",
        lambda w, a: P(Attribution.load, loc_with_scores(w, a)),
        ("record of a localization, not of an attribution",),
    ),
    (
        "attribution-record-other-model",
        lambda w, a: P(Attribution.load, att_record(w, a, lambda r: r["model"].update(model="x"))),
        ("mixes files of two results",),
    ),
    (
        "attribution-record-other-site",
        lambda w, a: P(Attribution.load, att_record(w, a, lambda r: r.update(site="mlp_post"))),
        ("mixes files of two results",),
    ),
    (
        "attribution-record-without-pairs",
        lambda w, a: P(Attribution.load, att_record(w, a, lambda r: r.pop("n_pairs"))),
        ("not the record of an attribution", "'n_pairs' is None"),
    ),
    (
        "attribution-scores-not-float",
        lambda w, a: P(Attribution.load, att_scores(w, a, lambda v: v.to(torch.int32))),
        ("torch.int32", "not floating-point"),
    ),
    (
        "attribution-scores-other-shape",
        lambda w, a: P(Attribution.load, att_scores(w, a, lambda v: v[:, :16])),
        ("shape (3, 16)", "has (3, 32) units"),
    ),
    (
        "attribution-items-truncated",
        lambda w, a: P(Attribution.load, att_items(w, a, 2)),
        ("items.csv: 2 rows", "on 3 pairs"),
    ),
    # wrong types given to the public constructors
    ("contrast-name-type", lambda w, a: P(Contrast, 5, {}, "a", "b"), ("name must be a string",)),
    (
        "contrast-pooling-type",
        lambda w, a: P(Contrast, "c", {"a": ["x y"]}, "a", "b", pooling=3),
        ("pooling must be one of",),
    ),
    (
        "units-mask-numpy",
        lambda w, a: P(Units, np.zeros((2, 2), dtype=bool), "resid_post", "m"),
        ("mask must be a bool tensor", "got ndarray"),
    ),
    (
        "units-site-type",
        lambda w, a: P(Units, torch.zeros(2, 2, dtype=torch.bool), 3, "m"),
        ("site must be a site name",),
    ),
    (
        "brain-sentences-a-string",
        lambda w, a: P(BrainData, "abc", pd.DataFrame({"y": [1.0, 2.0, 3.0]})),
        ("sentences must be a list", "got str"),
    ),
    (
        "brain-sentences-not-text",
        lambda w, a: P(BrainData, ["a b", 7], pd.DataFrame({"y": [1.0, 2.0]})),
        ("sentences must hold strings only", "found 7"),
    ),
    (
        "brain-groups-a-string",
        lambda w, a: P(BrainData, ["a", "b"], pd.DataFrame({"y": [1.0, 2.0]}), groups="ab"),
        ("groups must be a list",),
    ),
]


@pytest.mark.parametrize("call, fragments", [pytest.param(c, f, id=i) for i, c, f in CASES])
def test_data_raise_one_localize_error(call, fragments, work, saved_att):
    action = call(work, saved_att)  # the case's input files are written here
    before = work.snapshot()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(LocalizeError) as caught:
            action()
    assert type(caught.value) is LocalizeError
    for fragment in fragments:
        assert fragment in str(caught.value), (fragment, str(caught.value))
    assert work.snapshot() == before


# Each flagged case: (id, a function of the work folder returning the call, the fragments
# the warning must hold, a check of the call's result).
FLAGGED: list[tuple[str, Callable[[Work], Callable[[], Any]], tuple[str, ...], Callable]] = [
    (
        "contrast-csv-dropna",
        lambda w: P(
            Contrast.from_csv,
            w.write(
                "s.csv",
                (STIMULI + "mm qq,n\n").replace("a dog ran", " ").replace("zq vb,n", "zq vb,"),
            ),
            positive="s",
            negative="n",
            dropna=True,
        ),
        ("s.csv: dropped 2 row(s)", "data rows 2, 4", "4 of 6 remain"),
        lambda c: c.sizes() == {"s": 2, "n": 2} and c.negative == ["kk pl", "mm qq"],
    ),
    (
        "brain-csv-dropna",
        lambda w: P(
            BrainData.from_csv,
            w.write("b.csv", brain_rows(EffectSize2="inf", Sentence5="", EffectSize5="")),
            dropna=True,
        ),
        ("b.csv: dropped 2 row(s)", "1 in 'Sentence', 2 in 'EffectSize'", "10 of 12 remain"),
        lambda d: len(d) == 10 and np.isfinite(d.responses.to_numpy()).all(),
    ),
    (
        "contrast-texts-in-both-conditions",
        lambda w: P(
            Contrast.from_csv,
            w.write("s.csv", STIMULI.replace("zq vb", "the cat sat").replace("kk pl", "a dog ran")),
            positive="s",
            negative="n",
        ),
        ("2 text(s) occur in both 's' and 'n'", "counts in both conditions"),
        lambda c: c.sizes() == {"s": 3, "n": 2},
    ),
]


@pytest.mark.parametrize(
    "call, fragments, check", [pytest.param(c, f, k, id=i) for i, c, f, k in FLAGGED]
)
def test_data_flagged_with_a_warning(call, fragments, check, work):
    action = call(work)
    before = work.snapshot()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = action()
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert any(all(f in m for f in fragments) for m in messages), messages
    assert check(result)
    assert work.snapshot() == before


def test_lenient_data_that_mean_one_thing(work):
    """A sentence or a text spelled like a missing value (``NA``, ``None``) is a text; a
    tomloc file with a byte-order mark or Windows line ends is UTF-8."""
    path = work.write("b.csv", brain_rows(Sentence3="NA", Sentence4="None"))
    data = BrainData.from_csv(path)
    assert data.sentences[2:4] == ["NA", "None"] and len(data) == 12
    contrast = Contrast.from_csv(
        work.write("s.csv", STIMULI.replace("zq vb", "NA")), positive="s", negative="n"
    )
    assert contrast.negative == ["NA", "kk pl"]
    folder = tomloc(work, "\ufeffAnn put the cake\r\nin the box.\r\n".encode())
    stories = load_tomloc(work.work / folder)
    assert stories.loc[stories["id"] == "1b", "story"].item() == "Ann put the cake in the box."


CLI_CASES: list[tuple[str, Callable[[Work], list[Any]], tuple[str, ...]]] = [
    (
        "cli-brain-missing-response",
        lambda w: [
            "brain",
            "--units",
            "loc",
            "--data",
            w.write("b.csv", brain_rows(EffectSize4="")),
            "--folds",
            "3",
        ],
        ("b.csv", "'EffectSize'", "data row 4", "--dropna"),
    ),
    (
        "cli-contrast-empty-text",
        lambda w: [
            "localize",
            "--contrast",
            w.write("s.csv", STIMULI.replace("zq vb", "")),
            "--positive",
            "s",
            "--negative",
            "n",
        ],
        ("s.csv", "column 'text'", "data row 4"),
    ),
]


@pytest.mark.parametrize("build, fragments", [pytest.param(b, f, id=i) for i, b, f in CLI_CASES])
def test_cli_refuses_missing_values_before_loading_a_model(
    build, fragments, work, no_model, capsys
):
    argv = [*build(work), "--out", "out"]
    before = work.snapshot()
    rc, out, err = hostile.cli(capsys, argv)
    assert rc == 2, (out, err)
    line = hostile.error_line(err)
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert work.snapshot() == before
    assert not (work.work / "out").exists()
