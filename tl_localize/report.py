"""One self-contained HTML page from a folder of results.

Every results folder below the given one (a folder with a ``record.json``, or with the
tables and figures the commands write) becomes a section. The record's ``kind`` says what
the folder holds: the loader registered for that kind
(:data:`tl_localize.results.RESULT_KINDS`) reads the folder back, and the result's own card
(its ``_repr_html_``: the facts, a figure, the finding in words) opens the section; then
how it was made (the command, date, model and package versions; the whole record
collapsed), its figures (PNG, embedded as data URIs), its tables (per-item tables
collapsed), and its circuitsvis views. A folder whose record carries no kind (written by an
older release) is said to be so, and its files are shown as they are. The page loads
nothing from the network. A file that cannot be read is reported in its section and the
rest is still rendered.

The report treats a results folder as untrusted: every text it takes from one is escaped,
figures must decode as PNG, and a saved view is rendered from its JSON manifest (component
name from a fixed list, props as script-safe JSON) with the toolkit's own copy of the
circuitsvis bundle; no markup or script from the folder reaches the page.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from .cards import computed_on
from .errors import LocalizeError
from .results import RESULT_KINDS, folder_kind, load_result, now, read_record

__all__ = [
    "build_report",
    "build_study_report",
    "check_page",
    "find_results",
    "write_page",
    "write_report",
]

GENERATOR = '<meta name="generator" content="tl_localize">'  # marks a page as ours
RESULT_FILES = ("record.json", "*.csv", "*.png", "*.view.html")
MAX_ROWS = 40
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ddd; padding: .2em .5em; text-align: right; }
th { background: #f3f3f3; }
img { max-width: 100%; display: block; margin: .5em 0 1.5em; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .8em; }
.error { background: #fdecea; border-left: 4px solid #d93025; padding: .5em 1em; }
.meta td, .meta th { text-align: left; }
.note { color: #666; font-size: .85em; }
.summary { background: #f4f8ff; border-left: 4px solid #2f6fde; padding: .6em 1em; }
"""


def find_results(folder: str | Path) -> list[Path]:
    """The results folders at or below ``folder`` (sorted), skipping hidden ones."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LocalizeError(f"{folder} is not a folder; pass a results folder to report on.")
    found: list[Path] = []
    for path in sorted([folder, *(p for p in folder.rglob("*") if p.is_dir())]):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if any(study in path.parents for study in found if folder_kind(study) == "study"):
            continue  # a study is one section; its job folders are its own
        if folder_kind(path) == "study" or any(
            next(path.glob(pattern), None) for pattern in RESULT_FILES
        ):
            found.append(path)
    return found


def _kind(folder: Path) -> str:
    """What the folder holds, in words, from its record's kind."""
    kind = folder_kind(folder)
    if kind is not None:
        return kind
    return "no kind recorded" if (folder / "record.json").is_file() else "no record"


def _card(folder: Path) -> tuple[str, bool]:
    """The section's opening, from the record's kind: the result's own card, read back by
    the loader registered for its kind; a note where the record has no kind or the kind no
    loader. Returns the markup and whether a card was made."""
    kind = folder_kind(folder)
    if kind is None:
        try:
            read_record(folder)
        except LocalizeError:  # no record, or a damaged one (its section says which)
            return "", False
        return (
            '<p class="note">Its record.json carries no kind (written by an older '
            "tl_localize), so which result it holds is not known and no card is shown; its "
            "files follow as they are. Write the result again to see its card.</p>",
            False,
        )
    if kind not in RESULT_KINDS:
        return (
            f'<p class="note">A {html.escape(kind)} has no card of its own; its files follow.</p>',
            False,
        )
    try:
        result = load_result(folder)  # the loader of its kind
        return str(result._repr_html_()), True
    except Exception as error:  # a damaged folder costs only its card
        return _error(folder / "record.json", error), False


def _error(path: Path, error: BaseException) -> str:
    message = f"{type(error).__name__}: {error}".strip()
    return (
        f'<div class="error">Could not read <code>{html.escape(path.name)}</code>: '
        f"{html.escape(message)}. The rest of this section is shown.</div>"
    )


def _record(path: Path, *, lead: bool = True) -> str:
    record = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(record, dict):
        raise ValueError("record.json does not hold a JSON object")
    model = record.get("model") or record.get("localization", {}).get("model") or {}
    facts = {
        "command": record.get("command"),
        "created": record.get("created"),
        "model": model.get("model") if isinstance(model, dict) else model,
        "computed": computed_on(model),
        "contrast": (record.get("contrast") or record.get("localization", {}).get("contrast", {}))
        .get("name"),
        "versions": ", ".join(f"{k} {v}" for k, v in (record.get("versions") or {}).items()),
    }  # fmt: skip
    rows = "".join(
        f"<tr><th>{k}</th><td><code>{html.escape(str(v))}</code></td></tr>"
        for k, v in facts.items()
        if v
    )
    full = html.escape(json.dumps(record, indent=2, default=str))
    summary = record.get("summary")
    shown = f'<p class="summary">{html.escape(str(summary))}</p>' if summary and lead else ""
    return (
        f'{shown}<table class="meta">{rows}</table>'
        f"<details><summary>The whole record (record.json)</summary><pre>{full}</pre></details>"
    )


def _figure(path: Path) -> str:
    from PIL import Image

    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # decodes the whole image: a truncated file fails here
        if image.format != "PNG":
            raise ValueError(f"not a PNG image ({image.format})")
    encoded = base64.b64encode(data).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption class='note'>{html.escape(path.name)}</figcaption></figure>"
    )


def _reduce(path: Path, frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The part of a table worth showing on the page, and a note on what was left out."""
    n = len(frame)
    if path.name == "units.csv" and {"selected", "t"} <= set(frame.columns):
        chosen = frame[frame["selected"].astype(bool)].sort_values("t", ascending=False)
        shown = chosen.head(MAX_ROWS)
        return shown, f"the {len(shown)} selected units with the highest t, of {len(chosen)}"
    if path.name in ("attribution.csv", "join.csv") and "patch_abs" in frame.columns:
        chosen = frame.sort_values("patch_abs", ascending=False).head(MAX_ROWS)
        return chosen, f"the {len(chosen)} units with the highest patch_abs, of {n}"
    if path.name == "alignment.csv" and {"set", "r"} <= set(frame.columns):
        return (
            frame.groupby("set")["r"].agg(["count", "mean", "min", "max"]).reset_index(),
            f"r by set, summarized over {n} rows",
        )
    if n > MAX_ROWS:
        return frame.head(MAX_ROWS), f"the first {MAX_ROWS} of {n} rows"
    return frame, ""


COLLAPSED = ("items.csv", "conditions.csv", "attribution.csv", "join.csv", "units.csv")


def _table(path: Path) -> str:
    frame = pd.read_csv(path)
    if frame.empty:
        raise ValueError("the table has no rows")
    shown, note = _reduce(path, frame)
    caption = f"<h4>{html.escape(path.name)}</h4>"
    if note:
        caption += f'<p class="note">Showing {html.escape(note)}.</p>'
    table = shown.to_html(index=False, float_format=lambda x: f"{x:.4g}", border=0, escape=True)
    if path.name in COLLAPSED:  # raw per-item and per-unit tables, folded away
        return (
            f"<details><summary>{html.escape(path.name)} ({len(frame)} rows)</summary>"
            f"{caption}{table}</details>"
        )
    return caption + table


def _view(path: Path) -> str:
    from .views_html import read_view, render_parts

    parts = read_view(path)
    return f"<h4>{html.escape(path.name)}</h4>{render_parts(parts, with_bundle=False)}"


def _section(root: Path, folder: Path, anchor: str) -> str:
    title = "." if folder == root else str(folder.relative_to(root))
    kind = html.escape(_kind(folder))
    parts = [f'<section id="{anchor}"><h2>{html.escape(title)} ({kind})</h2>']
    card, carded = _card(folder)
    parts.append(card)
    if folder_kind(folder) == "study":
        parts.append(
            f'<p class="note">The whole study: <code>tl-localize study report '
            f"{html.escape(str(folder))}</code>.</p></section>"
        )
        return "\n".join(parts)
    record = folder / "record.json"
    if record.exists():
        try:
            parts.append(_record(record, lead=not carded))
        except Exception as error:  # any damage to one file is reported, the rest rendered
            parts.append(_error(record, error))
    else:
        parts.append('<p class="note">No record.json: how these results were made is unknown.</p>')
    for render, pattern in ((_figure, "*.png"), (_table, "*.csv"), (_view, "*.view.html")):
        for path in sorted(folder.glob(pattern)):
            try:
                parts.append(render(path))
            except Exception as error:
                parts.append(_error(path, error))
    parts.append("</section>")
    return "\n".join(parts)


def _page(heading: str, root: Path, body: str) -> str:
    heading = html.escape(heading)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">{GENERATOR}'
        f"<title>{heading}</title><style>{STYLE}</style></head><body>"
        f"<h1>{heading}</h1><p class='note'>Made {now()} from {html.escape(str(root))}.</p>"
        f"{body}</body></html>"
    )


def _frame_html(frame: pd.DataFrame, na_rep: str = "NaN") -> str:
    return frame.to_html(
        index=False, float_format=lambda x: f"{x:.4g}", border=0, escape=True, na_rep=na_rep
    )


def _figure_html(name: str, fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption class='note'>{html.escape(name)}</figcaption></figure>"
    )


def build_study_report(folder: str | Path, title: str | None = None) -> str:
    """The page of a study folder: the headline table first (per model and network: the
    effect, the effect against each control kind, whether it holds after adjustment over
    the study's comparisons, or that the task is at chance or at ceiling), the
    double-dissociation table, the figures, the verdicts, job status and failures, and the
    whole table folded."""
    from .study import StudyResult

    root = Path(folder)
    result = StudyResult(root)
    parts = ["<h2>Headline</h2>"]
    headline = result.headline()
    if headline.empty:
        parts.append('<p class="note">No ablation verdict yet (no finished evaluation).</p>')
    else:
        parts.append(
            '<p class="note">Change of each task\'s metric when the selected units are '
            "ablated (%, vs intact), the difference from each kind of random control "
            "(points), and whether the effect holds against every kind (adjusted p &lt; "
            f"0.05; {html.escape(_adjustment_words(headline))}). A task the intact model "
            "does at or below chance (its interval reaches the chance level) is marked "
            "<em>at chance</em> and one where every set scores 100% <em>at ceiling</em>: "
            "there is no effect to report, and none is printed (the numbers stay in the "
            "verdicts and the whole table).</p>"
        )
        parts.append(_frame_html(headline, na_rep=""))  # no effect printed: at chance / ceiling
        parts.append(_dissociation_html(result))
    figures = result.figures()
    if figures:
        parts.append("<h2>Figures</h2>")
        parts += [_figure_html(name, fig) for name, fig in figures.items()]
    if result.lineages():  # a checkpoint sweep: the selected set over training
        parts.append(
            '<h2>Checkpoints</h2><p class="note">Per training run and network, each '
            "checkpoint's selected units per layer, their Jaccard index with the previous and "
            "the final checkpoint's, and the first checkpoint from which it stays at or above "
            "0.8 with the final set; then each checkpoint's verdicts.</p>"
            + _frame_html(result.lineage())
            + _frame_html(result.lineage_effects())
        )
    verdicts = result.verdicts()
    if not verdicts.empty:
        parts.append("<h2>Verdicts</h2>" + _frame_html(verdicts))
    status = result.status()
    counts = status["status"].value_counts().to_dict()
    parts.append(
        "<h2>Jobs</h2><p>"
        + html.escape(", ".join(f"{n} {s}" for s, n in counts.items()))
        + "</p><details><summary>every job</summary>"
        + _frame_html(status)
        + "</details>"
    )
    failures = result.failures()
    if not failures.empty:
        parts.append("<h2>Failures</h2>" + _frame_html(failures.drop(columns=["traceback"])))
        for row in failures.itertuples():
            parts.append(
                f"<details><summary>{html.escape(f'{row.model}/{row.job}')}</summary>"
                f"<pre>{html.escape(str(row.traceback))}</pre></details>"
            )
    table = result.frame()
    parts.append(
        f"<details><summary>results.csv ({len(table)} rows)</summary>{_frame_html(table)}</details>"
    )
    return _page(title or f"tl_localize study: {result.study.name}", root, "".join(parts))


def _adjustment_words(headline: pd.DataFrame) -> str:
    n, method = int(headline["n_comparisons"].iloc[0]), str(headline["adjust"].iloc[0])
    words = {"holm": "Holm's method", "fdr_bh": "Benjamini-Hochberg"}
    if method not in words:
        return f"p-values not adjusted over the study's {n} comparisons"
    return f"p-values adjusted over the study's {n} comparisons by {words[method]}"


def _dissociation_html(result: Any) -> str:
    """The double-dissociation section: per model, network ablated x task, each cell the
    selected set's change and whether it hurts the task beyond every control kind."""
    cells = result.dissociation()
    if cells.empty:
        return ""
    parts = [
        "<h2>Double dissociation</h2>",
        '<p class="note">Per model: the network whose selected units are ablated (rows) '
        "by task (columns), at each network's largest fraction: the change vs intact, and "
        "<em>hurts</em> where the ablation hurts the task beyond every kind of random control "
        "after adjustment. A blank cell: the network was not ablated on that task.</p>",
    ]
    blocked = ~cells["verdict"].isin(["hurts", "no specific effect"])
    cells = cells.assign(
        cell=[
            verdict if hide else f"{change:+.1f}% ({verdict})"
            for change, verdict, hide in zip(
                cells["selected_change_pct"], cells["verdict"], blocked, strict=True
            )
        ]
    )
    for model, part in cells.groupby("model", sort=False):
        matrix = part.pivot(index="network", columns="task", values="cell").fillna("")
        parts.append(f"<h3>{html.escape(str(model))}</h3>")
        parts.append(matrix.reset_index().to_html(index=False, border=0, escape=True))
    found = result.double_dissociations()
    if found.empty:
        parts.append(
            "<p>No double dissociation: no two networks each hurt a different task beyond "
            "their controls while leaving the other's task without a specific effect.</p>"
        )
    else:
        items = "".join(
            f"<li>{html.escape(str(r.model))}: {html.escape(str(r.network_a))} hurts "
            f"{html.escape(str(r.task_a))} and {html.escape(str(r.network_b))} hurts "
            f"{html.escape(str(r.task_b))}, and neither the other's task</li>"
            for r in found.itertuples()
        )
        parts.append(f"<p>Double dissociations:</p><ul>{items}</ul>")
    return "".join(parts)


def build_report(folder: str | Path, title: str | None = None) -> str:
    """The report page for the results at or below ``folder``, as one HTML string (a study
    folder gets :func:`build_study_report`'s page)."""
    root = Path(folder)
    if folder_kind(root) == "study":
        return build_study_report(root, title)
    found = find_results(root)
    if not found:
        raise LocalizeError(
            f"{root} holds no results (no record.json, .csv or .png in it or below it). Write "
            "some first, e.g. 'tl-localize localize --out RESULTS/language', then report on "
            "RESULTS."
        )
    anchors = [f"r{i}" for i in range(len(found))]
    toc = "".join(
        f'<li><a href="#{a}">{html.escape("." if f == root else str(f.relative_to(root)))}</a>'
        f" ({html.escape(_kind(f))})</li>"
        for a, f in zip(anchors, found, strict=True)
    )
    sections = "\n".join(_section(root, f, a) for f, a in zip(found, anchors, strict=True))
    if "CircuitsVis.render(" in sections:  # one trusted copy of the bundle, before the views
        from .views_html import BUNDLE_TAG, bundle

        sections = f"{BUNDLE_TAG}{bundle()}</script>{sections}"
    heading = title or f"tl_localize report: {root.resolve().name}"
    return _page(heading, root, f"<ul>{toc}</ul>{sections}")


def check_page(path: str | Path, *, default: bool = False) -> Path:
    """Where a report page may be written: a new file in an existing folder, or a report
    page this toolkit wrote (``default``: the folder's own ``report.html``, replaced even if
    written before pages carried the toolkit's mark); never a folder or another file."""
    path = Path(path)
    if path.is_dir() or not path.name:
        raise LocalizeError(f"The page {path} is a folder; name an .html file to write.")
    if not path.parent.is_dir():
        raise LocalizeError(f"No folder {path.parent} to write the page {path.name} into.")
    if path.is_symlink() or (path.exists() and not default):
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                ours = GENERATOR in handle.read(4096)
        except OSError:
            ours = False
        if not ours:
            raise LocalizeError(
                f"{path} exists and is not a report page of tl_localize; it is never "
                "replaced. Name a new file for the page."
            )
    return path


def write_page(page: str, path: str | Path, *, default: bool = False) -> Path:
    """Write ``page`` to ``path`` (checked by :func:`check_page`) atomically."""
    path = check_page(path, default=default)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def write_report(folder: str | Path, out: str | Path | None = None, **kwargs: Any) -> Path:
    """Write :func:`build_report`'s page to ``out`` (default ``<folder>/report.html``); an
    existing file is replaced only if it is a report page of this toolkit."""
    path = Path(out) if out is not None else Path(folder) / "report.html"
    if out is not None:
        check_page(path)  # before the work
    page = build_report(folder, **kwargs)
    return write_page(page, path, default=out is None)
