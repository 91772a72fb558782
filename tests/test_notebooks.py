"""The notebooks in notebooks/: each runs top to bottom on the default model (model tier) and
shows what it is about; the executed copy (with outputs) is kept for the documentation site.

``NotebookClient.execute()`` raises on the first cell that fails, so the checks here are about
what the notebooks show: rich output and figures, no deprecated API, and a few outputs each
notebook exists to produce. A fast test runs a two-cell notebook on a tiny model to check
that a result object ending a cell shows its card.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tl_localize import Contrast
from tl_localize.models import DEFAULT_MODEL_FILE

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXECUTED_ENV = "TL_LOCALIZE_EXECUTED"  # read by docs_hooks.py, relative to the project root
DEFAULT_EXECUTED = "build/notebooks"
DEFAULT_MODEL_NAME = DEFAULT_MODEL_FILE.split(".")[0]  # SmolLM2-135M-Instruct
PNG_URI = "data:image/png;base64,"


def executed_dir() -> Path:
    """Where the executed copies go (the documentation site renders them from there)."""
    folder = (ROOT / os.environ.get(EXECUTED_ENV, DEFAULT_EXECUTED)).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def execute(nb: nbformat.NotebookNode, cwd: Path, timeout: int) -> nbformat.NotebookNode:
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return nb


def code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def rich(nb: nbformat.NotebookNode, mime: str) -> list[str]:
    """Every output of the notebook in ``mime`` (display data and cell results)."""
    found = []
    for cell in code_cells(nb):
        for output in cell.outputs:
            value = output.get("data", {}).get(mime)
            if value is not None:
                found.append(value if isinstance(value, str) else "".join(value))
    return found


def cell_ending_in(nb: nbformat.NotebookNode, expression: str) -> nbformat.NotebookNode:
    """The first code cell whose last line is ``expression``."""
    for cell in code_cells(nb):
        lines = [line for line in cell.source.strip().splitlines() if line.strip()]
        if lines and lines[-1].strip() == expression:
            return cell
    raise AssertionError(f"no code cell ends in {expression!r}")


def cell_result(cell: nbformat.NotebookNode) -> dict:
    """The data (by MIME type) of the cell's last result."""
    results = [o for o in cell.outputs if o.output_type == "execute_result"]
    assert results, f"the cell ending in {cell.source.splitlines()[-1]!r} shows no result"
    return results[-1].data


def result_html(cell: nbformat.NotebookNode) -> str:
    data = cell_result(cell)
    assert "text/html" in data, "the cell's result has no HTML representation"
    return data["text/html"]


def stream_text(nb: nbformat.NotebookNode, name: str) -> str:
    return "".join(
        output.text
        for cell in code_cells(nb)
        for output in cell.outputs
        if output.output_type == "stream" and output.name == name
    )


def html_tables_mentioning(nb: nbformat.NotebookNode, *words: str) -> list[str]:
    return [
        html
        for html in rich(nb, "text/html")
        if "<table" in html and all(word in html for word in words)
    ]


# -- what each notebook must show -------------------------------------------------------------


def check_quickstart(nb: nbformat.NotebookNode) -> None:
    card = result_html(cell_ending_in(nb, "loc"))
    assert "Localization" in card and DEFAULT_MODEL_NAME in card
    assert PNG_URI in card, "the Localization card carries no figure"
    text = stream_text(nb, "stdout")
    assert "localizer (sentences > nonwords) selected" in text, "loc.summary() is not printed"
    assert html_tables_mentioning(nb, "held_out", "in_sample"), "no held-out table"
    assert re.search(r"dice", text, re.IGNORECASE), "no split-half Dice reported"
    sentence = Contrast.builtin("language").positive[0]  # the token view's first text
    views = [html for html in rich(nb, "text/html") if "data-tl-localize" in html]
    assert any(sentence in html for html in views), "no token view of the first sentence"


def check_ablation(nb: nbformat.NotebookNode) -> None:
    verdicts = html_tables_mentioning(nb, "magnitude", "uniform", "specific")
    assert verdicts, "no verdicts table against uniform and magnitude-matched controls"
    assert html_tables_mentioning(nb, "zero", "mean", "resample", "verdict"), (
        "no side-by-side verdicts of zero, mean and resample ablation"
    )
    text = stream_text(nb, "stdout")
    assert "magnitude-matched random sets" in text, "no ablation summary in words"


def check_networks(nb: nbformat.NotebookNode) -> None:
    assert html_tables_mentioning(nb, "jaccard", "p_value"), "no overlap table"
    effects = html_tables_mentioning(nb, "network", "arithmetic", "false_belief")
    assert effects, "no table of each network's ablation effects on the three tasks"


def check_brain(nb: nbformat.NotebookNode) -> None:
    verdicts = html_tables_mentioning(nb, "difference_r", "verdict")
    assert verdicts, "no brain-alignment verdicts table"
    text = stream_text(nb, "stdout")
    assert "selected units predict the" in text, "no brain-alignment summary in words"


def check_circuits(nb: nbformat.NotebookNode) -> None:
    text = stream_text(nb, "stdout")
    assert "estimate agrees with real patching" in text, "no attribution check summary"
    assert html_tables_mentioning(nb, "spearman", "overlap_indices"), "no join summary table"
    assert html_tables_mentioning(nb, "group_change_pct_builtin"), "no group ablation in the join"


def result_text(cell: nbformat.NotebookNode) -> str:
    return str(cell_result(cell)["text/plain"])


def check_studies(nb: nbformat.NotebookNode) -> None:
    first = result_text(
        cell_ending_in(nb, 'result.run_counts["loads"], len(result.run_counts["ran"])')
    )
    loads, ran = ast.literal_eval(first)
    assert loads == {"smollm2": 1, "tiny-llama": 1, "tiny-gpt2": 1}, (
        f"not one load per model: {first}"
    )
    assert ran > 3, f"the first run ran too few jobs: {first}"
    again = result_text(
        cell_ending_in(
            nb,
            'again.run_counts["loads"], len(again.run_counts["ran"]), '
            'len(again.run_counts["skipped"])',
        )
    )
    assert ast.literal_eval(again) == ({}, 0, ran), f"the rerun did work: {again}"
    headline = html_tables_mentioning(nb, "tiny-llama", "tiny-gpt2", "smollm2", "effect")
    assert headline, "no headline table with the three models"


CHECKS: dict[str, Callable[[nbformat.NotebookNode], None]] = {
    "01_quickstart": check_quickstart,
    "02_ablation": check_ablation,
    "03_networks": check_networks,
    "04_brain_alignment": check_brain,
    "05_circuits_vs_selectivity": check_circuits,
    "06_studies": check_studies,
}


@pytest.mark.model
@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, request: pytest.FixtureRequest) -> None:
    nb = nbformat.read(path, as_version=4)
    if nb.metadata.get("tl_localize", {}).get("needs_shared_data"):
        request.getfixturevalue("shared_data")  # skips, saying why, when the data is absent
    copy = executed_dir() / path.name
    copy.unlink(missing_ok=True)  # a copy on disk is always of the current notebook
    execute(nb, path.parent, timeout=900)  # raises on the first cell that fails
    nbformat.write(nb, copy)

    assert rich(nb, "text/html"), "the notebook shows no rich (HTML) output"
    assert rich(nb, "image/png"), "the notebook shows no figure"
    deprecated = [
        line for line in stream_text(nb, "stderr").splitlines() if "DeprecationWarning" in line
    ]
    assert not deprecated, f"the notebook uses deprecated API: {deprecated}"
    CHECKS[path.stem](nb)


def test_checks_name_existing_notebooks() -> None:
    """Every notebook has its own checks, and a renamed notebook takes them along."""
    assert any(p.name == "01_quickstart.ipynb" for p in NOTEBOOKS)
    assert set(CHECKS) == {p.stem for p in NOTEBOOKS}


TINY_CELL = """\
import importlib.util

from tl_localize import localize

spec = importlib.util.spec_from_file_location("tl_localize_conftest", {conftest!r})
fixtures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fixtures)  # the test suite's tiny model and toy contrast
model = fixtures.tiny_model()
loc = localize(model, fixtures.toy_contrast_factory(), top=6, progress=False)
"""


def test_result_object_shows_its_card(tmp_path: Path) -> None:
    """A cell that ends in a Localization shows the card (tiny model, in memory)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [
        nbformat.v4.new_code_cell(TINY_CELL.format(conftest=str(ROOT / "conftest.py"))),
        nbformat.v4.new_code_cell("loc"),
    ]
    execute(nb, tmp_path, timeout=120)
    # without ipywidgets (as here) progress falls back to text bars, and says nothing
    warned = [line for line in stream_text(nb, "stderr").splitlines() if "TqdmWarning" in line]
    assert not warned, f"the notebook prints a progress-bar warning: {warned}"
    card = result_html(nb.cells[1])
    assert "Localization" in card
    assert "tiny" in card  # the model's name
    assert PNG_URI in card  # the per-layer figure, inlined
