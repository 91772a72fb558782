"""What the trust statistics cost on the default model: split-half reliability against one
localization, and the bootstrap intervals and verdicts against the rest of an ablation
comparison. Prints markdown tables; ratios are measured in this run.

    python benchmarks/trust_speed.py          # about 6 minutes on 2 cores
"""

from __future__ import annotations

import time

import tl_localize.compare as compare
from tl_localize import compare_ablation, load_model, localize, reliability


def main() -> None:
    model = load_model()
    localize(model, "language", top=0.01, progress=False)  # warm-up
    start = time.perf_counter()
    loc = localize(model, "language", top=0.01, progress=False)
    one = time.perf_counter() - start
    start = time.perf_counter()
    frame = reliability(model, "language", top=0.01, n_splits=10, progress=False)
    split = time.perf_counter() - start
    whole = frame[frame["scope"] == "all"]
    print("| what | time (s) | x one localize |")
    print("|---|---|---|")
    print(f"| localize, language, 480 stimuli | {one:.1f} | 1.00 |")
    print(f"| reliability, 10 splits (one model pass) | {split:.1f} | {split / one:.2f} |")
    print()
    print(
        f"split-half Dice at 1%: {whole['dice'].mean():.3f} (SD {whole['dice'].std():.3f}); "
        f"chance {whole['chance_dice'].mean():.4f}; t-map r {whole['t_corr'].mean():.3f}"
    )
    print()

    spent = {"stats": 0.0}
    real = compare.summarize_sets

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            spent["stats"] += time.perf_counter() - start

    compare.summarize_sets = timed
    start = time.perf_counter()
    result = compare_ablation(model, loc, ["builtin"], n_random=3, n_boot=1000, progress=False)
    total = time.perf_counter() - start
    compare.summarize_sets = real
    rest = total - spent["stats"]
    print("| compare_ablation, builtin suite, 1 + 1 + 2 x 3 sets | time (s) | share |")
    print("|---|---|---|")
    print(f"| evaluations (the model) | {rest:.1f} | {rest / total:.3f} |")
    print(
        f"| intervals, paired tests and verdicts (n_boot 1000) | {spent['stats']:.2f} | "
        f"{spent['stats'] / total:.3f} |"
    )
    print(f"| total | {total:.1f} | 1.000 |")
    print()
    print(f"bootstrap and verdicts add {100 * spent['stats'] / rest:.1f}% to the evaluations")
    print(result.summary())


if __name__ == "__main__":
    main()
