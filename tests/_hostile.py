"""What the hostile-input tests share (tests/test_hostile_*.py): the working folder each case
runs in, the guard against loading a model, the inputs the cases write, and the two checks
every case goes through (the command line refuses in one line with exit status 2; the API
raises one LocalizeError), each leaving the working folder as it was.

Each case runs in a working folder of its own (the current folder, with the user's files
in it) under a root that also holds a home folder (``$HOME``); the root is hashed before
and after, and must not change (the model cache, ``$TL_LOCALIZE_CACHE``, is left out).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

import tl_localize
import tl_localize.models
from tl_localize import (
    BrainData,
    Localization,
    LocalizeError,
)
from tl_localize.cli import build_parser, main

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


def tiny_model_named(name: str) -> Any:
    from conftest import tiny_model

    return tiny_model(name=name)


def check_cli_refusal(build, names, work, capsys) -> None:
    """The command line refuses ``build(work)``'s arguments in one line with exit status 2,
    and the working folder is as it was (no model loaded: request ``no_model``)."""
    argv = build(work)
    before = work.snapshot()
    rc, out, err = cli(capsys, argv)
    assert rc == 2, (out, err)
    line = error_line(err)
    if names is not None:
        assert names in line
    assert work.snapshot() == before
    assert not (work.work / "out").exists()


def check_api_error(call, names, work, tiny) -> None:
    """``call(work, tiny)`` writes the case's files and returns a call that raises one
    LocalizeError holding ``names``; the working folder is as it was."""
    action = call(work, tiny)  # the case's input files are written here
    before = work.snapshot()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(LocalizeError) as caught:
            action()
    if names is not None:
        assert names in str(caught.value)
    assert work.snapshot() == before


# a command's parser and, for each of its words, the names that spell it
Command = tuple[argparse.ArgumentParser, tuple[tuple[str, ...], ...]]


def cli_commands(parser: argparse.ArgumentParser | None = None) -> dict[tuple[str, ...], Command]:
    """Every command of ``tl-localize``, read from its parser: its words (``("localize",)``,
    ``("study", "run")``) -> its parser and, for each word, the names that spell it (the
    name and its aliases). A group of subcommands (``study``) is not itself a command.
    ``parser``: another parser to read (the CLI's by default)."""
    found: dict[tuple[str, ...], Command] = {}

    def walk(parser: argparse.ArgumentParser, words: tuple[str, ...], spellings: tuple) -> None:
        groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not groups:
            found[words] = (parser, spellings)
            return
        for group in groups:
            names: dict[int, list[str]] = {}
            for name, sub in group.choices.items():  # a name first, then its aliases
                names.setdefault(id(sub), []).append(name)
            for sub in {id(s): s for s in group.choices.values()}.values():
                spelled = tuple(names[id(sub)])
                walk(sub, (*words, spelled[0]), (*spellings, spelled))

    walk(build_parser() if parser is None else parser, (), ())
    return found
