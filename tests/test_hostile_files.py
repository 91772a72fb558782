"""Hostile saved files and results folders (fast tier, tiny models): a damaged or foreign
saved localization or unit file ends in ONE LocalizeError that names the file; a save never
replaces what is not a clean results folder; ``--force`` replaces one atomically, and a
killed or interrupted save leaves nothing that counts as a result. The shared working
folder and checks: tests/_hostile.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from functools import partial as P
from pathlib import Path
from typing import Any

import _hostile
import pytest
import torch
from _hostile import (
    ROOT,
    Work,
    check_api_error,
    edit_record,
    tiny_model_named,
    truncate,
    units_file,
    with_extra,
)

from tl_localize import (
    Localization,
    LocalizeError,
    Units,
    localize,
)
from tl_localize.results import is_results_folder

work = _hostile.work  # the fixtures: the working folder and the guard against loading a model
no_model = _hostile.no_model


# Each API case: (id, a function of (work, tiny) that writes the case's input files and
# returns the call that must raise LocalizeError, a text the message must hold or None).
API_CASES: list[tuple[str, Callable[[Work, Any], Callable[[], Any]], str | None]] = [
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
    # output locations
    ("save-into-the-current-folder", lambda w, m: P(w.loc.save, ".", force=True), "current folder"),
    ("save-over-a-users-folder", lambda w, m: P(w.loc.save, "mydata", force=True), "mydata"),
    (
        "save-over-results-plus-a-file",
        lambda w, m: P(w.loc.save, with_extra(w, "old", "notes.txt"), force=True),
        "notes.txt",
    ),
    ("save-into-home", lambda w, m: P(w.loc.save, Path.home(), force=True), "home"),
]


@pytest.mark.parametrize("call, names", [pytest.param(c, n, id=i) for i, c, n in API_CASES])
def test_api_raises_one_localize_error(call, names, work, tiny):
    check_api_error(call, names, work, tiny)


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
