"""Hostile input on the command line (fast tier, tiny models): every argument a user can get
wrong ends in one ``tl-localize: error:`` line on stderr with exit status 2, before any
model loads; nothing outside the output folder is ever touched; ``--force`` replaces only a
results folder of the toolkit. The shared working folder and checks: tests/_hostile.py."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _hostile
import pytest
from _hostile import (
    LATIN1,
    LOCALIZE,
    MALFORMED,
    TEXT_COLUMNS,
    Work,
    broken_hf,
    check_cli_refusal,
    cli,
    cli_commands,
    edit_record,
    error_line,
    loc_args,
    nested,
    suite,
    truncate,
    truncated_gguf,
    with_extra,
)

import tl_localize
import tl_localize.models

work = _hostile.work  # the fixtures: the working folder and the guard against loading a model
no_model = _hostile.no_model


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
    # study
    ("study-status-not-a-study", lambda w: ["study", "status", "mydata"], "mydata"),
]


@pytest.mark.parametrize("build, names", [pytest.param(b, n, id=i) for i, b, n in CLI_CASES])
def test_cli_refuses_before_loading_a_model(build, names, work, no_model, capsys):
    check_cli_refusal(build, names, work, capsys)


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


def test_cli_interrupt_exits_130_and_writes_nothing(work, monkeypatch, capsys):
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(tl_localize.models, "load_model", interrupted)
    before = work.snapshot()
    rc, _, err = cli(capsys, [*LOCALIZE, "--out", "out"])
    assert rc == 130 and "interrupted" in err
    assert work.snapshot() == before


# -- every command that writes results, read from the parser -------------------------------
STUDY = """name = "s"
[[models]]
label = "m"
spec = "tiny"
[[networks]]
name = "language"
[tasks.arithmetic]
"""
# a valid value for each argument a command requires (by its dest), written in the work folder
REQUIRED: dict[str, Callable[[Work], Any]] = {
    "units": lambda w: "loc",
    "data": lambda w: "brain.csv",
    "spec": lambda w: w.write("study.toml", STUDY),
}
RESULTS_COMMANDS = [
    words
    for words, (parser, _) in cli_commands().items()
    if {"--out", "--force"} <= set(parser._option_string_actions)
]


def with_required(words: tuple[str, ...], w: Work, out: Any) -> list[Any]:
    parser, _ = cli_commands()[words]
    argv: list[Any] = [*words]
    for action in parser._actions:
        positional = not action.option_strings and action.nargs is None
        if action.dest == "out" or not (action.required or positional):
            continue
        if action.dest not in REQUIRED:
            pytest.fail(f"{' '.join(words)} requires {action.dest}: add a value to REQUIRED")
        value = REQUIRED[action.dest](w)
        argv += [value] if positional else [action.option_strings[0], value]
    return [*argv, "--out", out, "--force"]


@pytest.mark.parametrize("out", [".", "..", "~"])
@pytest.mark.parametrize("words", RESULTS_COMMANDS, ids=" ".join)
def test_every_command_that_writes_results_refuses_the_current_parent_and_home_folders(
    words, out, work, no_model, capsys
):
    """``--force`` never empties the folder a user works in, the one above it or the home
    folder, whatever the command; the refusal names the folder."""
    target = {".": work.work, "..": work.root, "~": work.home}[out]
    check_cli_refusal(lambda w: with_required(words, w, out), str(target), work, capsys)
    assert len(RESULTS_COMMANDS) >= 6  # localize, reliability, the analyses and study run
