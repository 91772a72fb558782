"""Compact HTML cards: what a result object shows as the last line of a notebook cell.

Each card says what the object is, on which model, how many units and where they sit, the
headline numbers, and carries a small seaborn figure (a PNG inlined as a data URI, so the
card works offline and in saved notebooks). Everything taken from data is escaped.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .attribution import Attribution
    from .brain import BrainAlignment
    from .compare import AblationComparison
    from .contrast import Contrast
    from .localize import Localization
    from .units import Units

__all__ = [
    "ablation_card",
    "attribution_card",
    "brain_card",
    "busiest_layers",
    "comparison_card",
    "contrast_card",
    "layer_ranges",
    "localization_card",
    "units_card",
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


def _facts(facts: Mapping[str, Any]) -> str:
    rows = "".join(
        f'<tr><th style="{CELL};color:#57606a;font-weight:normal">{html.escape(k)}</th>'
        f'<td style="{CELL}">{html.escape(str(v))}</td></tr>'
        for k, v in facts.items()
        if v is not None
    )
    return f'<table style="{TABLE}">{rows}</table>'


def _figure_png(draw: Any, size: tuple[float, float] = (5.0, 1.6)) -> str:
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


def _layers_figure(counts: np.ndarray, ylabel: str = "units") -> str:
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

    return _figure_png(draw)


def _card(title: str, facts: Mapping[str, Any], figure: str = "", text: str = "") -> str:
    body = f'<div style="{STYLE}"><div style="font-weight:600">{html.escape(title)}</div>'
    body += _facts(facts) + figure
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


def units_card(units: Units) -> str:
    counts = units.mask.sum(1).numpy()
    facts = {
        "model": units.model_name,
        "site": units.site,
        "units": f"{len(units):,} of {units.n_units:,} ({len(units) / units.n_units:.3%})",
        "most in layers": layer_ranges(busiest_layers(counts)) if len(units) else "-",
        "fingerprint": units.fingerprint,
        "dtype": units.dtype,
    }
    return _card("Units", facts, _layers_figure(counts) if len(units) else "")


def localization_card(loc: Localization) -> str:
    units = loc.units
    pos, neg = loc.conditions
    counts = units.mask.sum(1).numpy()
    selected_t = loc.stats["t"][units.mask]
    facts = {
        "contrast": f"{loc.contrast}: {pos} > {neg} ({loc.record['contrast'].get('sizes')})",
        "model": units.model_name,
        "site": units.site,
        "selected": f"{len(units):,} of {units.n_units:,} ({len(units) / units.n_units:.3%}); "
        f"{_chosen_by(loc)}, {loc.config.selection}",
        "mean t (selected)": f"{float(selected_t.mean()):.2f}" if len(units) else "-",
        "preset": loc.config.preset,
        "computed": computed_on(loc.record.get("model")),
    }
    figure = _layers_figure(counts) if len(units) else ""
    return _card("Localization", facts, figure, loc.summary())


def _chosen_by(loc: Localization) -> str:
    band = loc.config.band
    return f"band={band[0]:g}-{band[1]:g}" if band is not None else f"top={loc.config.top!r}"


def contrast_card(contrast: Contrast) -> str:
    examples = {
        f"{cond} ({len(texts)})": (texts[0][:90] + ("..." if len(texts[0]) > 90 else ""))
        for cond, texts in contrast.conditions.items()
    }
    facts = {
        "contrast": f"{contrast.positive_condition} > {contrast.negative_condition}",
        "pooling": contrast.pooling,
        **examples,
        "hash": contrast.hash[:16],
    }
    return _card(f"Contrast {contrast.name!r}", facts, text=contrast.description)


def attribution_card(att: Attribution) -> str:
    scores = att.scores["patch_abs"]
    per_layer = scores.sum(1).double().numpy()
    flat = att.to_frame().nlargest(5, "patch_abs")
    top = ", ".join(f"L{r.layer}.{r.unit}" for r in flat.itertuples())
    facts = {
        "task": f"{att.task} ({len(att.items)} pairs)",
        "model": att.model_name,
        "site": att.site,
        "units": f"{scores.numel():,} ({scores.shape[0]} layers x {scores.shape[1]})",
        "top by patch_abs": top,
        "computed": computed_on(att.record.get("model")),
    }
    return _card("Attribution", facts, _layers_figure(per_layer, "patch_abs"))


def comparison_card(comparison: AblationComparison) -> str:
    import seaborn as sns

    table = comparison.table
    data = table[table["set"] != "intact"].copy()
    data["set"] = np.where(
        data["set"] == "selected", "selected", "random " + data["match"].astype(str)
    )

    def draw(ax: Any) -> None:
        sns.barplot(data=data, x="task", y="change_pct", hue="set", errorbar="sd", ax=ax)
        ax.axhline(0, color="0.3", linewidth=0.8)
        ax.set_ylabel("change (%)", fontsize=8)
        ax.legend(fontsize=7)

    facts = {
        "model": ", ".join(dict.fromkeys(table["model"])),
        "method": comparison.settings.get("method"),
        "tasks": ", ".join(comparison.settings.get("tasks", [])),
        "controls": f"{comparison.settings.get('n_random')} per kind of "
        f"{', '.join(comparison.settings.get('match', []))}",
    }
    shown = ["task", "fraction", "match", "difference_pct", "p_value", "p_adjusted", "verdict"]
    verdicts = comparison.verdicts[[c for c in shown if c in comparison.verdicts.columns]]
    table_html = verdicts.to_html(index=False, float_format=lambda x: f"{x:.3g}", border=0)
    return _card(
        "Ablation comparison",
        facts,
        _figure_png(draw, (5.0, 2.2)) + table_html,
        comparison.summary(),
    )


ablation_card = comparison_card


def brain_card(alignment: BrainAlignment) -> str:
    table = alignment.table
    facts = {
        "data": ", ".join(dict.fromkeys(table["data"].astype(str))),
        "model": ", ".join(dict.fromkeys(table["model"].astype(str))),
        "sets": ", ".join(f"{k} ({v})" for k, v in table["set"].value_counts().items()),
    }
    return _card("Brain alignment", facts, text=alignment.summary())
