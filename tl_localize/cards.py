"""The pieces of the compact HTML cards a result object shows as the last line of a notebook
cell.

Each card says what the object is, on which model, how many units and where they sit, the
headline numbers, and carries a small seaborn figure (a PNG inlined as a data URI, so the
card works offline and in saved notebooks). Everything taken from data is escaped. Each
type's card lives beside the type (``Localization._repr_html_`` in ``localize.py``, ...);
this module knows no result type, only how a card is put together.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "busiest_layers",
    "card",
    "computed_on",
    "facts_table",
    "figure_png",
    "frame_html",
    "layer_ranges",
    "layers_figure",
]

STYLE = (
    "border:1px solid #d0d7de;border-radius:6px;padding:10px 14px;margin:4px 0;"
    "font-family:system-ui,sans-serif;font-size:13px;max-width:760px"
)
TABLE = "border-collapse:collapse;margin:6px 0"
CELL = "padding:1px 10px 1px 0;text-align:left;vertical-align:top"


def layer_ranges(layers: list[int]) -> str:
    """``[19, 20, 27, 28, 29]`` as ``"19-20 and 27-29"``."""
    if not layers:
        return "no layer"
    runs: list[list[int]] = [[layers[0], layers[0]]]
    for layer in layers[1:]:
        if layer == runs[-1][1] + 1:
            runs[-1][1] = layer
        else:
            runs.append([layer, layer])
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def busiest_layers(counts: np.ndarray, share: float = 0.5) -> list[int]:
    """The fewest layers that together hold at least ``share`` of the units, sorted."""
    order = np.argsort(-counts, kind="stable")
    total, chosen, acc = counts.sum(), [], 0
    for layer in order:
        if total == 0 or acc >= share * total:
            break
        chosen.append(int(layer))
        acc += counts[layer]
    return sorted(chosen)


def facts_table(facts: Mapping[str, Any]) -> str:
    """Two columns, name and value, both escaped; None values are left out."""
    rows = "".join(
        f'<tr><th style="{CELL};color:#57606a;font-weight:normal">{html.escape(k)}</th>'
        f'<td style="{CELL}">{html.escape(str(v))}</td></tr>'
        for k, v in facts.items()
        if v is not None
    )
    return f'<table style="{TABLE}">{rows}</table>'


def figure_png(draw: Any, size: tuple[float, float] = (5.0, 1.6)) -> str:
    """Draw on a fresh matplotlib Figure (no pyplot state touched); an <img> data URI."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=90)
    ax = fig.subplots()
    draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{encoded}" style="max-width:100%">'


def layers_figure(counts: np.ndarray, ylabel: str = "units") -> str:
    """A bar per layer (``counts``), as an inlined PNG."""
    import seaborn as sns

    frame = pd.DataFrame({"layer": np.arange(len(counts)), ylabel: counts})

    def draw(ax: Any) -> None:
        sns.barplot(data=frame, x="layer", y=ylabel, color="tab:blue", ax=ax)
        ax.tick_params(axis="x", labelsize=6)
        ax.set_xlabel("layer", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        if len(counts) > 16:
            for i, label in enumerate(ax.get_xticklabels()):
                label.set_visible(i % 2 == 0)

    return figure_png(draw)


def card(title: str, facts: Mapping[str, Any], figure: str = "", text: str = "") -> str:
    """A card: a bold title, a table of facts (None values left out), a figure or other
    markup the caller made safe, and a sentence (escaped)."""
    body = f'<div style="{STYLE}"><div style="font-weight:600">{html.escape(title)}</div>'
    body += facts_table(facts) + figure
    if text:
        body += f'<p style="margin:6px 0 0">{html.escape(text)}</p>'
    return body + "</div>"


def computed_on(signature: Any) -> str | None:
    """Where and in what precision a result was computed, in words, from a record's model
    signature: ``"bfloat16 (auto) on cuda:0, NVIDIA H100 80GB HBM3 (79.1 GiB)"``; None when
    the record predates it."""
    if not isinstance(signature, Mapping):
        return None
    hardware = signature.get("hardware")
    dtype = signature.get("dtype")
    if not isinstance(hardware, Mapping):
        return str(dtype) if dtype else None
    auto = " (auto)" if hardware.get("dtype_auto") else ""
    where = f"{hardware.get('device')}, {hardware.get('name')}"
    if hardware.get("memory_gib") is not None:
        where += f" ({hardware['memory_gib']} GiB)"
    elif hardware.get("device") == "cpu":
        where += f" (bfloat16 {'fast' if hardware.get('bf16_fast') else 'slow'})"
    return f"{dtype}{auto} on {where}"


def frame_html(frame: pd.DataFrame) -> str:
    """A small table for a card (values escaped, floats to 3 significant digits)."""
    return frame.to_html(index=False, float_format=lambda x: f"{x:.3g}", border=0, escape=True)
