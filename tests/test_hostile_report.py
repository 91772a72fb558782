"""Hostile input to the report (fast tier, tiny models): a page is never written over a
user's file or into a folder that is not there, from the command line (one error line,
exit status 2, no model loaded) or the API (one LocalizeError). The shared working folder
and checks: tests/_hostile.py."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial as P
from typing import Any

import _hostile
import pytest
from _hostile import (
    Work,
    check_api_error,
    check_cli_refusal,
)

from tl_localize import (
    write_report,
)

work = _hostile.work  # the fixtures: the working folder and the guard against loading a model
no_model = _hostile.no_model


# Each CLI case: (id, argv from the working folder, a text the message must hold or None).
REPORT_CLI_CASES: list[tuple[str, Callable[[Work], list[Any]], str | None]] = [
    ("report-missing-folder", lambda w: ["report", "nothing"], "nothing is not a folder"),
    ("report-over-a-users-file", lambda w: ["report", "loc", "--out", "notes.txt"], "notes.txt"),
    ("report-into-a-folder", lambda w: ["report", "loc", "--out", "mydata"], "mydata"),
    ("report-into-a-missing-folder", lambda w: ["report", "loc", "--out", "new/page.html"], "new"),
    (
        "study-report-over-a-users-file",
        lambda w: ["study", "report", "mydata", "--page", "notes.txt"],
        None,
    ),
]


@pytest.mark.parametrize("build, names", [pytest.param(b, n, id=i) for i, b, n in REPORT_CLI_CASES])
def test_report_cli_refuses_before_loading_a_model(build, names, work, no_model, capsys):
    check_cli_refusal(build, names, work, capsys)


# Each API case: (id, a function of (work, tiny) that writes the case's input files and
# returns the call that must raise LocalizeError, a text the message must hold or None).
REPORT_API_CASES: list[tuple[str, Callable[[Work, Any], Callable[[], Any]], str | None]] = [
    ("report-over-a-users-file", lambda w, m: P(write_report, "loc", "notes.txt"), "notes.txt"),
]


@pytest.mark.parametrize("call, names", [pytest.param(c, n, id=i) for i, c, n in REPORT_API_CASES])
def test_report_api_raises_one_localize_error(call, names, work, tiny):
    check_api_error(call, names, work, tiny)
