"""How much to trust the language localization of the default model: the numbers quoted in
docs/method.md ("How much to trust a localization"), all computed in one run.

- split-half reliability at 1% (10 splits) and its chance level;
- the selected units' selectivity in-sample and on held-out stimuli (holdout 0.5);
- how many units pass FDR and max-t permutation thresholds at 0.05;
- the ablation effect of the 1% units on the built-in suite and on BLiMP (20 pairs per
  paradigm) against uniform and magnitude-matched controls (3 seeds each), for zero, mean
  and resample ablation, with intervals and verdicts.

    python benchmarks/trust_numbers.py [--blimp ../shared/data/blimp]   # about 40 min, 2 cores
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from tl_localize import Contrast, compare_ablation, load_model, localize, reliability, unit_means

BLIMP = Path(__file__).resolve().parents[2] / "shared" / "data" / "blimp"


def _markdown(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * frame.shape[1]]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blimp", default=str(BLIMP))
    parser.add_argument("--quick", action="store_true", help="the built-in suite only")
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    model = load_model(dtype="float32")

    frame = reliability(model, "language", top=0.01, n_splits=10, progress=False)
    whole = frame[frame["scope"] == "all"]
    print("## Split-half reliability (1%, 10 splits)\n")
    print(
        f"Dice {whole['dice'].mean():.3f} (SD {whole['dice'].std():.3f}, range "
        f"{whole['dice'].min():.3f}-{whole['dice'].max():.3f}); Jaccard "
        f"{whole['jaccard'].mean():.3f}; chance Dice {whole['chance_dice'].mean():.4f}; "
        f"t-map r {whole['t_corr'].mean():.3f}\n"
    )

    held = localize(model, "language", top=0.01, holdout=0.5, seed=0, progress=False)
    print("## Held-out selectivity (select on half, measure on the other half)\n")
    print(_markdown(held.holdout.round(3)), "\n")

    loc = localize(model, "language", top=0.01, progress=False)
    print("## Selection by significance\n")
    rows = []
    for top in ("fdr:0.05", "perm:0.05"):
        found = localize(model, "language", top=top, n_permutations=1000, progress=False)
        selection = found.record["selection"]
        rows.append(
            {"rule": top, "units passing": selection["n_passed"],
             "share of the site": selection["n_passed"] / found.units.n_units,
             "threshold (t)": selection.get("threshold"),
             "overlap with the top 1%": len(found.units & loc.units)}
        )  # fmt: skip
    print(_markdown(pd.DataFrame(rows)), "\n")

    reference = Contrast.builtin("language4").conditions["word_lists"]
    means = unit_means(model, reference, site="resid_post", progress=False)
    # the whole built-in suite; BLiMP at 20 pairs per paradigm (1,340 pairs)
    tasks = [("builtin", None)] if args.quick else [("builtin", None), ("blimp", 20)]
    verdicts = []
    for method in ("zero", "mean", "resample"):
        print(f"## {method} ablation\n")
        for task, n in tasks:
            result = compare_ablation(
                model, loc, [task], n_random=3, method=method,
                means=means if method == "mean" else None,
                reference=reference if method == "resample" else None,
                blimp=args.blimp, n_per_paradigm=n, progress=False,
            )  # fmt: skip
            print(result.summary(), "\n")
            verdicts.append(result.verdicts)
    table = pd.concat(verdicts, ignore_index=True)
    columns = ["task", "method", "match", "selected_change_pct", "control_change_pct"]
    columns += ["difference_pct", "difference_low", "difference_high", "p_value", "verdict"]
    print("## Verdicts\n")
    print(_markdown(table[columns].round(3)))


if __name__ == "__main__":
    main()
