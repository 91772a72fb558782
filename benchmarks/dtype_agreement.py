"""bfloat16 against float32 on the default model, in one run: the time of ``localize`` (the
480 built-in language stimuli), the agreement of the 1% masks (Jaccard), and the share of
the built-in suite's items with the same outcome. ``dtype="auto"`` chooses bfloat16 only
where the hardware is fast at it; this script measures both wherever it runs.

    python benchmarks/dtype_agreement.py      # about 3 minutes on 2 cores
"""

from __future__ import annotations

import time

from tl_localize import evaluate, load_model, localize
from tl_localize.models import bf16_is_fast


def main() -> None:
    rows = {}
    for dtype in ("float32", "bfloat16"):
        model = load_model(dtype=dtype)
        localize(model, "language", progress=False)  # warm-up
        start = time.perf_counter()
        loc = localize(model, "language", progress=False)
        seconds = time.perf_counter() - start
        items = evaluate.minimal_pairs(model, evaluate.builtin_pairs(), progress=False)
        rows[dtype] = (seconds, loc, items)
    f32, b16 = rows["float32"], rows["bfloat16"]
    same = float((f32[2]["correct"] == b16[2]["correct"]).mean())
    print(f"bfloat16 fast on this machine: {bf16_is_fast()}")
    print("| dtype | localize (s) | x float32 | mask Jaccard vs float32 | builtin accuracy |")
    print("|---|---|---|---|---|")
    for dtype, (seconds, loc, items) in rows.items():
        print(
            f"| {dtype} | {seconds:.1f} | {seconds / f32[0]:.2f} | "
            f"{loc.units.jaccard(f32[1].units):.3f} | {items['correct'].mean():.3f} |"
        )
    print()
    print(f"items with the same outcome in bfloat16 and float32: {same:.3f}")


if __name__ == "__main__":
    main()
