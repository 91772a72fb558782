"""Hostile input (fast tier, tiny models): every input a user can get wrong ends in ONE
LocalizeError that names it; the command line says it in one line on stderr with exit
status 2, before any model loads; nothing outside the output folder is ever touched;
``--force`` replaces only a results folder of the toolkit, atomically.

Each case runs in a working folder of its own (the current folder, with the user's files
in it) under a root that also holds a home folder (``$HOME``); the root is hashed before
and after, and must not change (the model cache, ``$TL_LOCALIZE_CACHE``, is left out).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial as P
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import tl_localize
import tl_localize.models
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
    write_report,
)
from tl_localize.brain import encoding_score
from tl_localize.cli import main
from tl_localize.data.pairs import load_blimp, read_pairs
from tl_localize.data.syntaxgym import load_suites
from tl_localize.localize import parse_top, resolve_top, significance
from tl_localize.results import is_results_folder
from tl_localize.tasks import prepare_tasks

ROOT = Path(__file__).resolve().parents[1]
TEXT_COLUMNS = "text,condition\n"


# -- the working folder ------------------------------------------------------------------
@dataclass
class Work:
    """The test's root (``work/`` the current folder, ``home/`` the home folder)."""

    root: Path
    work: Path
    home: Path
    loc: Localization

    def write(self, name: str, data: str | bytes) -> Path:
        path = self.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
        return Path(name)

    def results(self, name: str) -> Path:
        """A copy of a clean results folder (a saved localization of ``tiny``)."""
        shutil.copytree(self.work / "loc", self.work / name)
        return Path(name)

    def snapshot(self) -> dict[str, str]:
        """Every file, folder and link under the root, with a hash of each file."""
        found = {}
        for folder, dirs, files in os.walk(self.root):
            here = Path(folder)
            if here == self.root:
                dirs[:] = [d for d in dirs if d != "cache"]
            for name in dirs + files:
                path = here / name
                key = str(path.relative_to(self.root))
                if path.is_symlink():
                    found[key] = f"link -> {os.readlink(path)}"
                elif path.is_dir():
                    found[key] = "dir"
                else:
                    found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        return found


@pytest.fixture(scope="session")
def saved_loc(tiny, toy_contrast, tmp_path_factory):
    loc = localize(tiny, toy_contrast, top=6, progress=False)
    folder = loc.save(tmp_path_factory.mktemp("saved") / "loc", figure=False)
    return loc, folder


@pytest.fixture
def work(tmp_path, monkeypatch, saved_loc, toy_contrast):
    root = tmp_path / "root"
    folders = {name: root / name for name in ("work", "home", "cache")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    monkeypatch.chdir(folders["work"])
    monkeypatch.setenv("HOME", str(folders["home"]))
    monkeypatch.setenv("TL_LOCALIZE_CACHE", str(folders["cache"]))
    monkeypatch.setenv("MPLCONFIGDIR", str(folders["cache"] / "matplotlib"))  # not the home's
    w = Work(root, folders["work"], folders["home"], saved_loc[0])
    toy_contrast.to_frame().to_csv(w.work / "stim.csv", index=False)
    w.write("notes.txt", "my notes, not results")
    w.write("mydata/experiment.txt", "a week of work")
    w.write("mydata/table.csv", "a,b\n1,2\n")
    rng = np.random.default_rng(0)
    w.write(
        "brain.csv",
        "Sentence,EffectSize,Group\n"
        + "".join(
            f"the {w} sat on mat {i},{rng.normal():.4f},{i % 2}\n"
            for i, w in enumerate("cat dog owl fox hen ram cow elk yak emu gnu bee".split())
        ),
    )
    w.write("pairs.csv", "sentence_good,sentence_bad\nthe dogs run far,the dogs ran far\n")
    (folders["home"] / ".profile").write_text("export PATH=...")
    shutil.copytree(saved_loc[1], w.work / "loc")
    return w


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model fails the test: the arguments must be checked before."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("a model was loaded before the arguments were checked")

    monkeypatch.setattr(tl_localize.models, "load_model", refuse)
    monkeypatch.setattr(tl_localize, "load_model", refuse, raising=False)


def cli(capsys, argv: list[Any]) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def error_line(err: str, *, alone: bool = True) -> str:
    """The one ``tl-localize: error:`` line of stderr (``alone``: the only line)."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("tl-localize: error:")]
    assert len(errors) == 1, err
    assert len(errors[0]) > len("tl-localize: error: ") + 10
    if alone:
        assert lines == errors, err
    else:  # a model loaded (its loading bars may come first): the error is the last line
        assert lines[-1] == errors[0], err
    assert "Traceback" not in err
    return errors[0]


# -- inputs a case writes ------------------------------------------------------------------
LATIN1 = "text,condition\nd\xe9j\xe0 vu,a\ncaf\xe9 noir,a\nzq,b\nvb,b\n".encode("latin-1")
MALFORMED = 'text,condition\n"an unterminated quote,a\nx,b\n'
GOOD_ITEM = {
    "item_number": 1,
    "conditions": [
        {
            "condition_name": "match",
            "regions": [
                {"region_number": 1, "content": "The dog"},
                {"region_number": 2, "content": "runs"},
            ],
        },
        {
            "condition_name": "mismatch",
            "regions": [
                {"region_number": 1, "content": "The dog"},
                {"region_number": 2, "content": "run"},
            ],
        },
    ],
}
PREDICTIONS = [{"formula": "(2;%match%) < (2;%mismatch%)"}]


def suite(**changes: Any) -> str:
    body: dict[str, Any] = {
        "meta": {"name": "agr"},
        "predictions": PREDICTIONS,
        "items": [GOOD_ITEM],
    }
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not None})


def item(number: Any = 1, region: Any = 1) -> dict:
    copy = json.loads(json.dumps(GOOD_ITEM))
    copy["item_number"] = number
    copy["conditions"][0]["regions"][0]["region_number"] = region
    return copy


def edit_record(w: Work, folder: str, change: Callable[[dict], Any]) -> Path:
    path = w.results(folder)
    record = json.loads((w.work / path / "record.json").read_text())
    change(record)
    (w.work / path / "record.json").write_text(json.dumps(record))
    return path


def truncate(w: Work, folder: str, name: str, n: int) -> Path:
    path = w.results(folder)
    file = w.work / path / name
    file.write_bytes(file.read_bytes()[:n])
    return path


def units_file(w: Work, folder: str, mask: torch.Tensor, **meta: str) -> Path:
    path = w.results(folder)
    header = {
        "format": "tl_localize.units/1",
        "site": "resid_post",
        "model": "tiny",
        "n_layers": "3",
        "width": "32",
        **meta,
    }
    save_file({"mask": mask}, str(w.work / path / "units.safetensors"), metadata=header)
    return path


def with_extra(w: Work, folder: str, name: str, text: str = "mine") -> Path:
    path = w.results(folder)
    w.write(f"{folder}/{name}", text)
    return path


def nested(w: Work) -> Path:
    outer = w.results("outer")
    shutil.copytree(w.work / "loc", w.work / "outer" / "inner")
    w.write("outer/inner/analysis.txt", "my analysis")
    return outer


def broken_hf(w: Work, source: Path, change: str) -> Path:
    target = w.work / f"hf_{change}"
    shutil.copytree(source, target)
    if change == "weights":
        weights = target / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        (target / "config.json").write_text("{not json")
    return target


def truncated_gguf(w: Work) -> Path:
    try:
        source = tl_localize.models.default_model_path()
    except LocalizeError:
        pytest.skip("the embedded default model is not installed")
    with open(source, "rb") as handle:
        head = handle.read(100_000)
    return w.work / w.write("trunc.gguf", head)


LOCALIZE = ["localize", "--contrast", "stim.csv", "--positive", "words", "--negative", "junk"]


def loc_args(*extra: Any) -> Callable[[Work], list[Any]]:
    return lambda w: [*LOCALIZE, "--out", "out", *extra]


# Each CLI case: (id, argv from the working folder, a text the message must hold or None).
# None of them may load a model.
CLI_CASES: list[tuple[str, Callable[[Work], list[Any]], str | None]] = [
    # the data-loss cases: --force never replaces what is not a clean results folder
    ("out-current-folder", lambda w: [*LOCALIZE, "--out", ".", "--force"], "current folder"),
    ("out-parent-folder", lambda w: [*LOCALIZE, "--out", "..", "--force"], "folder above it"),
    ("out-parent-spelled", lambda w: [*LOCALIZE, "--out", "mydata/..", "--force"], "current"),
    ("out-users-folder", lambda w: [*LOCALIZE, "--out", "mydata", "--force"], "mydata"),
    ("out-is-a-file", lambda w: [*LOCALIZE, "--out", "notes.txt", "--force"], "notes.txt"),
    ("out-home", lambda w: [*LOCALIZE, "--out", w.home, "--force"], "home folder"),
    ("out-home-tilde", lambda w: [*LOCALIZE, "--out", "~", "--force"], "home folder"),
    ("out-above-home", lambda w: [*LOCALIZE, "--out", w.root, "--force"], "folder above it"),
    (
        "out-results-plus-user-file",
        lambda w: [*LOCALIZE, "--out", with_extra(w, "old", "notes.txt"), "--force"],
        "notes.txt",
    ),
    (
        "out-results-plus-user-csv-folder",
        lambda w: [*LOCALIZE, "--out", with_extra(w, "old", "mine/data.csv"), "--force"],
        "mine/",
    ),
    (
        "out-results-plus-hidden-folder",
        lambda w: [*LOCALIZE, "--out", with_extra(w, "old", ".git/config"), "--force"],
        ".git/",
    ),
    (
        "out-results-holding-results-plus-user-file",
        lambda w: [*LOCALIZE, "--out", nested(w), "--force"],
        "inner/analysis.txt",
    ),
    (
        "out-symlink",
        lambda w: (
            (w.work / "link").symlink_to(w.work / "mydata")
            or [*LOCALIZE, "--out", "link", "--force"]
        ),
        "link",
    ),
    ("out-exists-without-force", lambda w: [*LOCALIZE, "--out", "loc"], "--force"),
    (
        "out-not-ours",
        lambda w: [*LOCALIZE, "--out", edit_record(w, "old", lambda r: r.clear()), "--force"],
        "not a results folder",
    ),
    ("ablate-out-current", lambda w: ["ablate", "--units", "loc", "--out", ".", "--force"], None),
    (
        "brain-out-parent",
        lambda w: ["brain", "--units", "loc", "--data", "brain.csv", "--out", "..", "--force"],
        None,
    ),
    (
        "attribute-out-home",
        lambda w: ["attribute", "--units", "loc", "--out", "~", "--force"],
        "home",
    ),
    # damaged or foreign stimuli
    (
        "contrast-empty-csv",
        lambda w: ["localize", "--contrast", w.write("e.csv", ""), *LOCALIZE[3:], "--out", "out"],
        "e.csv",
    ),
    (
        "contrast-header-only",
        lambda w: [
            "localize",
            "--contrast",
            w.write("h.csv", TEXT_COLUMNS),
            *LOCALIZE[3:],
            "--out",
            "out",
        ],
        "h.csv",
    ),
    (
        "contrast-not-utf8",
        lambda w: [
            "localize",
            "--contrast",
            w.write("l.csv", LATIN1),
            "--positive",
            "a",
            "--negative",
            "b",
            "--out",
            "out",
        ],
        "l.csv",
    ),
    (
        "contrast-malformed",
        lambda w: [
            "localize",
            "--contrast",
            w.write("m.csv", MALFORMED),
            "--positive",
            "a",
            "--negative",
            "b",
            "--out",
            "out",
        ],
        "m.csv",
    ),
    (
        "contrast-csv-without-conditions",
        lambda w: ["localize", "--contrast", "stim.csv", "--out", "out"],
        "--positive",
    ),
    ("contrast-unknown", lambda w: ["localize", "--contrast", "vision", "--out", "out"], "vision"),
    (
        "contrast-missing-file",
        lambda w: [
            "localize",
            "--contrast",
            "nope.csv",
            "--positive",
            "a",
            "--negative",
            "b",
            "--out",
            "out",
        ],
        "nope.csv",
    ),
    (
        "contrast-unknown-condition",
        lambda w: [
            "localize",
            "--contrast",
            "stim.csv",
            "--positive",
            "words",
            "--negative",
            "x",
            "--out",
            "out",
        ],
        "'x'",
    ),
    ("contrast-unknown-column", loc_args("--text-column", "sentence"), "sentence"),
    (
        "contrast-one-text-repeated",
        lambda w: [
            "localize",
            "--contrast",
            w.write("rep.csv", TEXT_COLUMNS + "a cat,s\na cat,s\nzq,n\nvb,n\n"),
            "--positive",
            "s",
            "--negative",
            "n",
            "--out",
            "out",
        ],
        "repeats",
    ),
    (
        "contrast-empty-evlab-folder",
        lambda w: ["localize", "--contrast", (w.work / "lists").mkdir() or "lists", "--out", "out"],
        "lists",
    ),
    # settings
    *[
        (f"top={top}", loc_args("--top", top), "top")
        for top in ("0", "-1", "1.5", "abc", "fdr:2", "perm:0", "True", "", "0%")
    ],
    *[
        (f"band={band}", loc_args("--band", band), "band")
        for band in ("90-80%", "0.5", "abc", "0-1.5", "0.2-0.2", "nan-1", "", "a-b%")
    ],
    ("band-and-top", loc_args("--band", "80-90%", "--top", "1%"), "give one of them"),
    *[
        (f"reliability-{i}", lambda w, a=a: ["reliability", "--out", "out", *a], name)
        for i, (a, name) in enumerate(
            [
                (["--sizes", "1.5"], "--sizes"),
                (["--sizes", "0"], "--sizes"),
                (["--sizes", "500"], "at most 120"),
                (["--sizes", "many"], "--sizes"),
                (["--top", "fdr:0.05"], "--top"),
                (["--top", "0"], "top"),
                (["--n-splits", "1"], "--n-splits"),
                (["--seed", "-1"], "--seed"),
                (["--contrast", "nothing.csv"], "nothing.csv"),
                (
                    [
                        "--contrast",
                        "stim.csv",
                        "--positive",
                        "words",
                        "--negative",
                        "junk",
                        "--sizes",
                        "5",
                    ],
                    "at most 4 each",
                ),
            ]
        )
    ],
    *[(f"batch-size={b}", loc_args("--batch-size", b), "batch") for b in ("0", "-1", "1.5")],
    ("seed=-1", loc_args("--seed", "-1"), "seed"),
    *[
        (f"holdout={h}", loc_args("--holdout", h), "holdout")
        for h in ("0", "1", "1.5", "-0.5", "nan", "0.9")
    ],
    ("truncate=0", loc_args("--truncate", "0"), "truncate"),
    ("n-permutations=5", loc_args("--top", "perm:0.05", "--n-permutations", "5"), "n_permutations"),
    ("site-unknown", loc_args("--site", "neurons"), "--site"),
    ("fdr-per-layer", loc_args("--top", "fdr:0.05", "--selection", "per_layer"), "selection"),
    ("preset-conflict", loc_args("--preset", "alkhamissi2025", "--site", "mlp_post"), "Preset"),
    ("unknown-option", loc_args("--topp", "5"), "--topp"),
    ("no-command", lambda w: [], "command"),
    ("unknown-command", lambda w: ["localise"], "localise"),
    ("missing-out", lambda w: LOCALIZE, "--out"),
    # ablate
    (
        "task-unknown",
        lambda w: ["ablate", "--units", "loc", "--tasks", "gsm8k", "--out", "out"],
        "gsm8k",
    ),
    ("task-none", lambda w: ["ablate", "--units", "loc", "--tasks", ",", "--out", "out"], "tasks"),
    *[
        (
            f"task-{t}-without-data",
            lambda w, t=t: ["ablate", "--units", "loc", "--tasks", t, "--out", "out"],
            flag,
        )
        for t, flag in (
            ("blimp", "--blimp"),
            ("syntaxgym", "--syntaxgym"),
            ("perplexity", "--perplexity"),
        )
    ],
    (
        "n-per-paradigm=0-arithmetic",
        lambda w: [
            "ablate",
            "--units",
            "loc",
            "--tasks",
            "arithmetic",
            "--n-per-paradigm",
            "0",
            "--out",
            "out",
        ],
        "--n-per-paradigm",
    ),
    (
        "n-random=-1",
        lambda w: ["ablate", "--units", "loc", "--n-random", "-1", "--out", "out"],
        "--n-random",
    ),
    (
        "n-boot=5",
        lambda w: ["ablate", "--units", "loc", "--n-boot", "5", "--out", "out"],
        "--n-boot",
    ),
    (
        "ablate-seed=-3",
        lambda w: ["ablate", "--units", "loc", "--seed", "-3", "--out", "out"],
        "--seed",
    ),
    (
        "match-unknown",
        lambda w: ["ablate", "--units", "loc", "--match", "size", "--out", "out"],
        "size",
    ),
    *[
        (
            f"fractions={f}",
            lambda w, f=f: ["ablate", "--units", "loc", "--fractions", f, "--out", "out"],
            "fraction",
        )
        for f in ("0", "abc", "nan", "1.5", "0.000001")
    ],
    (
        "reference-with-zero",
        lambda w: ["ablate", "--units", "loc", "--reference", "language", "--out", "out"],
        "--reference",
    ),
    (
        "reference-missing-file",
        lambda w: [
            "ablate",
            "--units",
            "loc",
            "--method",
            "mean",
            "--reference",
            "ref.txt",
            "--out",
            "out",
        ],
        "ref.txt",
    ),
    ("units-missing", lambda w: ["ablate", "--units", "nothing", "--out", "out"], "nothing"),
    ("units-a-file", lambda w: ["ablate", "--units", "notes.txt", "--out", "out"], "notes.txt"),
    ("units-not-results", lambda w: ["ablate", "--units", "mydata", "--out", "out"], "record.json"),
    (
        "units-record-empty",
        lambda w: ["ablate", "--units", edit_record(w, "bad", lambda r: r.clear()), "--out", "out"],
        "record.json",
    ),
    (
        "units-stats-truncated",
        lambda w: [
            "ablate",
            "--units",
            truncate(w, "bad", "stats.safetensors", 100),
            "--out",
            "out",
        ],
        "stats.safetensors",
    ),
    (
        "blimp-bad-json-line",
        lambda w: [
            "ablate",
            "--units",
            "loc",
            "--tasks",
            "blimp",
            "--blimp",
            w.write(
                "blimp/agr.jsonl", '{"sentence_good": "a b", "sentence_bad": "b a"}\n{x\n'
            ).parent,
            "--out",
            "out",
        ],
        "agr.jsonl, line 2",
    ),
    (
        "syntaxgym-missing-key",
        lambda w: [
            "ablate",
            "--units",
            "loc",
            "--tasks",
            "syntaxgym",
            "--syntaxgym",
            w.write("s.json", suite(items=None)),
            "--out",
            "out",
        ],
        "'items'",
    ),
    (
        "syntaxgym-bad-formula",
        lambda w: [
            "ablate",
            "--units",
            "loc",
            "--tasks",
            "syntaxgym",
            "--syntaxgym",
            w.write("s.json", suite(predictions=[{"formula": "(2;%match%) <"}])),
            "--out",
            "out",
        ],
        "prediction 0",
    ),
    (
        "perplexity-blank-file",
        lambda w: [
            "ablate",
            "--units",
            "loc",
            "--tasks",
            "perplexity",
            "--perplexity",
            w.write("blank.txt", "\n \n"),
            "--out",
            "out",
        ],
        "blank.txt",
    ),
    # brain
    (
        "folds=1",
        lambda w: [
            "brain",
            "--units",
            "loc",
            "--data",
            "brain.csv",
            "--folds",
            "1",
            "--out",
            "out",
        ],
        "--folds",
    ),
    (
        "folds-above-sentences",
        lambda w: [
            "brain",
            "--units",
            "loc",
            "--data",
            "brain.csv",
            "--folds",
            "50",
            "--out",
            "out",
        ],
        "brain.csv",
    ),
    (
        "folds-above-groups",
        lambda w: [
            "brain",
            "--units",
            "loc",
            "--data",
            "brain.csv",
            "--group-column",
            "Group",
            "--out",
            "out",
        ],
        "--group-column",
    ),
    (
        "brain-unknown-column",
        lambda w: [
            "brain",
            "--units",
            "loc",
            "--data",
            "brain.csv",
            "--response-column",
            "BOLD",
            "--out",
            "out",
        ],
        "BOLD",
    ),
    (
        "brain-constant-response",
        lambda w: [
            "brain",
            "--units",
            "loc",
            "--data",
            w.write("c.csv", "Sentence,EffectSize\n" + "".join(f"s {i},1.5\n" for i in range(12))),
            "--out",
            "out",
        ],
        "EffectSize",
    ),
    (
        "brain-missing-responses",
        lambda w: [
            "brain",
            "--units",
            "loc",
            "--data",
            w.write("m.csv", "Sentence,EffectSize\n" + "".join(f"s {i},\n" for i in range(12))),
            "--out",
            "out",
        ],
        "EffectSize",
    ),
    (
        "brain-not-a-table",
        lambda w: ["brain", "--units", "loc", "--data", "notes.txt", "--out", "out"],
        "notes.txt",
    ),
    (
        "brain-n-random=-2",
        lambda w: [
            "brain",
            "--units",
            "loc",
            "--data",
            "brain.csv",
            "--n-random",
            "-2",
            "--out",
            "out",
        ],
        "--n-random",
    ),
    # attribute
    (
        "check=1",
        lambda w: ["attribute", "--units", "loc", "--check", "1", "--out", "out"],
        "--check",
    ),
    (
        "n-items=0",
        lambda w: ["attribute", "--units", "loc", "--n-items", "0", "--out", "out"],
        "--n-items",
    ),
    (
        "score-unknown",
        lambda w: ["attribute", "--units", "loc", "--score", "t", "--out", "out"],
        "--score",
    ),
    (
        "pairs-identical",
        lambda w: [
            "attribute",
            "--units",
            "loc",
            "--pairs",
            w.write("same.csv", "sentence_good,sentence_bad\nthe dog runs,the dog runs\n"),
            "--out",
            "out",
        ],
        "same text",
    ),
    (
        "pairs-not-a-table",
        lambda w: ["attribute", "--units", "loc", "--pairs", "notes.txt", "--out", "out"],
        "notes.txt",
    ),
    # report and study
    ("report-missing-folder", lambda w: ["report", "nothing"], "nothing is not a folder"),
    ("report-over-a-users-file", lambda w: ["report", "loc", "--out", "notes.txt"], "notes.txt"),
    ("report-into-a-folder", lambda w: ["report", "loc", "--out", "mydata"], "mydata"),
    ("report-into-a-missing-folder", lambda w: ["report", "loc", "--out", "new/page.html"], "new"),
    ("study-status-not-a-study", lambda w: ["study", "status", "mydata"], "mydata"),
    (
        "study-report-over-a-users-file",
        lambda w: ["study", "report", "mydata", "--page", "notes.txt"],
        None,
    ),
]


@pytest.mark.parametrize("build, names", [pytest.param(b, n, id=i) for i, b, n in CLI_CASES])
def test_cli_refuses_before_loading_a_model(build, names, work, no_model, capsys):
    argv = build(work)
    before = work.snapshot()
    rc, out, err = cli(capsys, argv)
    assert rc == 2, (out, err)
    line = error_line(err)
    if names is not None:
        assert names in line
    assert work.snapshot() == before
    assert not (work.work / "out").exists()


# -- the command line past the model: tiny Hugging Face folders --------------------------
def long_csv(w: Work) -> Path:
    return w.write("long.csv", TEXT_COLUMNS + "x" * 200 + ",a\nthe cat,a\nzq,b\nvb,b\n")


LOADED_CASES: list[tuple[str, Callable[[Work, dict], list[Any]], str]] = [
    (
        "tokens-past-the-context",
        lambda w, hf: [
            "localize",
            "--model",
            hf["llama"],
            "--contrast",
            long_csv(w),
            "--positive",
            "a",
            "--negative",
            "b",
            "--top",
            "2",
        ],
        "context",
    ),
    (
        "top-count-above-the-units",
        lambda w, hf: [*LOCALIZE, "--model", hf["llama"], "--top", "100000"],
        "100000",
    ),
    (
        "top-fraction-selects-none",
        lambda w, hf: [*LOCALIZE, "--model", hf["llama"], "--top", "0.001"],
        "selects none",
    ),
    (
        "units-of-another-model",
        lambda w, hf: ["ablate", "--units", "loc", "--model", hf["llama"]],
        "made for",
    ),
    (
        "brain-units-of-another-model",
        lambda w, hf: [
            "brain",
            "--units",
            "loc",
            "--data",
            "brain.csv",
            "--folds",
            "3",
            "--model",
            hf["gpt2"],
        ],
        "made for",
    ),
    (
        "model-folder-damaged-weights",
        lambda w, hf: [*LOCALIZE, "--model", broken_hf(w, hf["llama"], "weights")],
        "hf_weights",
    ),
    (
        "model-folder-damaged-config",
        lambda w, hf: [*LOCALIZE, "--model", broken_hf(w, hf["gpt2"], "config")],
        "hf_config",
    ),
    ("model-folder-not-a-model", lambda w, hf: [*LOCALIZE, "--model", "mydata"], "mydata"),
    (
        "model-empty-gguf",
        lambda w, hf: [*LOCALIZE, "--model", w.write("empty.gguf", b"")],
        "empty.gguf",
    ),
    (
        "model-foreign-gguf",
        lambda w, hf: [*LOCALIZE, "--model", w.write("x.gguf", b"PK\x03\x04" * 64)],
        "x.gguf",
    ),
    ("model-truncated-gguf", lambda w, hf: [*LOCALIZE, "--model", truncated_gguf(w)], "trunc.gguf"),
    ("model-a-file", lambda w, hf: [*LOCALIZE, "--model", "notes.txt"], "notes.txt"),
]


@pytest.mark.parametrize("build, names", [pytest.param(b, n, id=i) for i, b, n in LOADED_CASES])
def test_cli_errors_that_need_the_model(build, names, work, tiny_hf, capsys):
    argv = [*build(work, tiny_hf), "--out", "out", "--quiet"]
    before = work.snapshot()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc, out, err = cli(capsys, argv)
    assert rc == 2, (out, err)
    assert names in error_line(err, alone=False)
    assert work.snapshot() == before
    assert not (work.work / "out").exists()


def test_cli_force_replaces_a_clean_results_folder_and_nothing_else(work, tiny_hf, capsys):
    before = work.snapshot()
    argv = [*LOCALIZE, "--model", tiny_hf["llama"], "--top", "5", "--out", "loc", "--force"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc, _, err = cli(capsys, [*argv, "--quiet"])
    assert rc == 0, err
    after = work.snapshot()
    assert {k: v for k, v in after.items() if not k.startswith("work/loc")} == {
        k: v for k, v in before.items() if not k.startswith("work/loc")
    }
    record = json.loads((work.work / "loc" / "record.json").read_text())
    assert record["model"]["model"] == "llama" and record["n_selected"] == 5
    assert not [p for p in work.work.iterdir() if p.name.startswith(".")]


# -- the API ---------------------------------------------------------------------------------
def _pairs_jsonl(w: Work) -> Path:
    return w.work / w.write("p.jsonl", '{"sentence_good": "a b", "sentence_bad": "b a"}\n[1]\n')


def _brain(n: int = 12, **columns: Any) -> BrainData:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "Sentence": [f"the cat sat {i}" for i in range(n)],
            "EffectSize": rng.normal(size=n),
            **columns,
        }
    )
    return BrainData.from_frame(frame, groups="g" if "g" in columns else None)


TWO = {"a": ["the cat sat", "a dog ran"], "b": ["zq vb", "kk pl"]}

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
    # saved localizations and unit files
    (
        "load-record-empty",
        lambda w, m: P(Localization.load, truncate(w, "bad", "record.json", 0)),
        "record.json",
    ),
    (
        "load-record-malformed",
        lambda w, m: P(Localization.load, truncate(w, "bad", "record.json", 40)),
        "record.json",
    ),
    (
        "load-record-not-an-object",
        lambda w, m: P(Localization.load, with_extra(w, "bad", "record.json", "[1, 2]")),
        "list",
    ),
    (
        "load-record-without-model",
        lambda w, m: P(Localization.load, edit_record(w, "bad", lambda r: r.pop("model"))),
        "'model'",
    ),
    (
        "load-record-config-not-an-object",
        lambda w, m: P(Localization.load, edit_record(w, "bad", lambda r: r.update(config="x"))),
        "config",
    ),
    (
        "load-record-config-damaged",
        lambda w, m: P(
            Localization.load, edit_record(w, "bad", lambda r: r["config"].update(site="neurons"))
        ),
        "record.json",
    ),
    (
        "load-record-config-wrong-type",
        lambda w, m: P(
            Localization.load, edit_record(w, "bad", lambda r: r["config"].update(batch_size="32"))
        ),
        "record.json",
    ),
    (
        "load-record-other-model",
        lambda w, m: P(
            Localization.load, edit_record(w, "bad", lambda r: r["model"].update(model="gpt2"))
        ),
        "gpt2",
    ),
    (
        "load-stats-truncated",
        lambda w, m: P(Localization.load, truncate(w, "bad", "stats.safetensors", 100)),
        "stats.safetensors",
    ),
    (
        "load-stats-empty",
        lambda w, m: P(Localization.load, truncate(w, "bad", "stats.safetensors", 0)),
        "stats.safetensors",
    ),
    (
        "load-units-truncated",
        lambda w, m: P(Localization.load, truncate(w, "bad", "units.safetensors", 60)),
        "units.safetensors",
    ),
    (
        "load-units-header-shape",
        lambda w, m: P(
            Localization.load,
            units_file(w, "bad", torch.zeros(3, 32, dtype=torch.uint8), width="16"),
        ),
        "(3, 16)",
    ),
    (
        "load-units-not-boolean",
        lambda w, m: P(
            Localization.load, units_file(w, "bad", torch.full((3, 32), 7, dtype=torch.uint8))
        ),
        "not boolean",
    ),
    (
        "load-units-other-model",
        lambda w, m: P(
            Localization.load,
            units_file(w, "bad", torch.zeros(3, 32, dtype=torch.uint8), model="gpt2"),
        ),
        "gpt2",
    ),
    (
        "load-units-fewer-layers-than-stats",
        lambda w, m: P(
            Localization.load,
            units_file(w, "bad", torch.zeros(2, 32, dtype=torch.uint8), n_layers="2"),
        ),
        "stats.safetensors",
    ),
    (
        "load-holdout-table-empty",
        lambda w, m: P(Localization.load, with_extra(w, "bad", "holdout.csv", "")),
        "holdout.csv",
    ),
    (
        "load-for-another-model",
        lambda w, m: P(Localization.load, "loc", model=tiny_model_named("other")),
        "other",
    ),
    ("units-load-a-csv", lambda w, m: P(Units.load, "stim.csv"), "stim.csv"),
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
    # output locations
    ("save-into-the-current-folder", lambda w, m: P(w.loc.save, ".", force=True), "current folder"),
    ("save-over-a-users-folder", lambda w, m: P(w.loc.save, "mydata", force=True), "mydata"),
    (
        "save-over-results-plus-a-file",
        lambda w, m: P(w.loc.save, with_extra(w, "old", "notes.txt"), force=True),
        "notes.txt",
    ),
    ("save-into-home", lambda w, m: P(w.loc.save, Path.home(), force=True), "home"),
    ("report-over-a-users-file", lambda w, m: P(write_report, "loc", "notes.txt"), "notes.txt"),
]


def tiny_model_named(name: str) -> Any:
    from conftest import tiny_model

    return tiny_model(name=name)


@pytest.mark.parametrize("call, names", [pytest.param(c, n, id=i) for i, c, n in API_CASES])
def test_api_raises_one_localize_error(call, names, work, tiny):
    action = call(work, tiny)  # the case's input files are written here
    before = work.snapshot()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(LocalizeError) as caught:
            action()
    if names is not None:
        assert names in str(caught.value)
    assert work.snapshot() == before


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


# -- --force and atomic replacement --------------------------------------------------------
def test_force_replaces_a_results_folder_with_exactly_the_new_results(tiny, toy_contrast, tmp_path):
    old = localize(tiny, toy_contrast, top=6, progress=False)
    new = localize(tiny, toy_contrast, top=9, holdout=0.5, progress=False)
    old.save(tmp_path / "loc")
    with pytest.raises(LocalizeError, match="already exists"):
        new.save(tmp_path / "loc", figure=False)
    new.save(tmp_path / "loc", force=True, figure=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loc"]  # no temporary folder left
    names = {p.name for p in (tmp_path / "loc").iterdir()}
    assert names == {
        "record.json",
        "stats.safetensors",
        "units.safetensors",
        "units.csv",
        "conditions.csv",
        "holdout.csv",
    }
    back = Localization.load(tmp_path / "loc", tiny)
    assert len(back.units) == 9 and back.config.top == 9 and back.holdout is not None


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


KILLED_SAVE = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from conftest import tiny_model, toy_contrast_factory
    from tl_localize import localize

    loc = localize(tiny_model(), toy_contrast_factory(), top=6, progress=False)

    def slow_savefig(self, *args, **kwargs):
        print("saving", flush=True)
        time.sleep(120)

    Figure.savefig = slow_savefig
    loc.save(sys.argv[1])
    """
)


def test_a_killed_save_leaves_no_result_and_the_next_save_removes_its_leftovers(
    tiny, toy_contrast, tmp_path
):
    parent = tmp_path / "results"
    parent.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_SAVE.format(root=str(ROOT)), str(parent / "language")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "saving"  # in the middle of the save
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    leftovers = [p for p in parent.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".language.partial-")
    assert (leftovers[0] / ".tl_localize-owner").is_file()
    assert not is_results_folder(leftovers[0])  # nothing that counts as a result
    assert not (parent / "language").exists()

    loc = localize(tiny, toy_contrast, top=6, progress=False)
    with pytest.warns(UserWarning, match=r"removed .*\.language\.partial-.*interrupted save"):
        loc.save(parent / "other", figure=False)
    assert sorted(p.name for p in parent.iterdir()) == ["other"]


def test_results_moved_aside_by_a_killed_save_are_restored_or_removed(tiny, toy_contrast, tmp_path):
    loc = localize(tiny, toy_contrast, top=6, progress=False)
    # killed after moving the old results aside, before renaming the new ones into place
    aside = tmp_path / ".language.old-x1"
    loc.save(aside, figure=False)
    (aside / ".tl_localize-owner").write_text(f"{socket.gethostname()} {_dead_pid()}")
    with pytest.warns(UserWarning, match="restored .*language"):
        loc.save(tmp_path / "other", figure=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["language", "other"]
    assert Localization.load(tmp_path / "language").units == loc.units
    # killed after the new results were in place, before the old ones were deleted
    loc.save(aside, figure=False)
    (aside / ".tl_localize-owner").write_text(f"{socket.gethostname()} {_dead_pid()}")
    with pytest.warns(UserWarning, match="removed .*language.old-x1"):
        loc.save(tmp_path / "third", figure=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["language", "other", "third"]
    # a save that is still running is left alone
    running = tmp_path / ".fourth.partial-x2"
    running.mkdir()
    (running / ".tl_localize-owner").write_text(f"{socket.gethostname()} {os.getpid()}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loc.save(tmp_path / "fifth", figure=False)
    assert running.is_dir() and not [w for w in caught if "tl_localize:" in str(w.message)]


def test_an_interrupted_save_leaves_nothing_that_counts_as_a_result(
    tiny, toy_contrast, tmp_path, monkeypatch
):
    loc = localize(tiny, toy_contrast, top=6, progress=False)
    loc.save(tmp_path / "loc", figure=False)
    before = {p.name: p.read_bytes() for p in (tmp_path / "loc").iterdir()}

    def interrupted() -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(loc, "plot", interrupted)
    for target, force in ((tmp_path / "new", False), (tmp_path / "loc", True)):
        with pytest.raises(KeyboardInterrupt):
            loc.save(target, force=force)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loc"]  # old results untouched
    assert {p.name: p.read_bytes() for p in (tmp_path / "loc").iterdir()} == before


def test_cli_interrupt_exits_130_and_writes_nothing(work, monkeypatch, capsys):
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(tl_localize.models, "load_model", interrupted)
    before = work.snapshot()
    rc, _, err = cli(capsys, [*LOCALIZE, "--out", "out"])
    assert rc == 130 and "interrupted" in err
    assert work.snapshot() == before


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


def test_cases_are_many_enough():
    assert len(CLI_CASES) + len(LOADED_CASES) + len(API_CASES) >= 40
