"""Minimal pairs per second on the default model: batched vs one pair per forward pass.

    python benchmarks/eval_speed.py

Scores the toolkit's built-in minimal-pair suite (334 pairs) with ``evaluate.minimal_pairs``
at several batch sizes; batch size 2 is one pair (good + bad sentence) per forward pass.
Each setting runs twice and the faster run counts (CPU timings vary by about 10% from run
to run). Prints a markdown table with speed-ups measured in this run and the largest
difference in log-probability from the one-pair-per-pass run.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from tl_localize import evaluate, load_model


def main() -> None:
    model = load_model()
    pairs = evaluate.builtin_pairs()
    evaluate.minimal_pairs(model, pairs.head(8), progress=False)  # warm-up
    results = {}
    for batch_size in (2, 8, 32, 64) * 2:
        if batch_size == 2:
            # one pair per forward pass: good and bad sentence together
            start = time.perf_counter()
            frames = [
                evaluate.minimal_pairs(model, pairs.iloc[[i]], batch_size=2, progress=False)
                for i in range(len(pairs))
            ]
            seconds = time.perf_counter() - start
            frame = pd.concat(frames, ignore_index=True)
        else:
            start = time.perf_counter()
            frame = evaluate.minimal_pairs(model, pairs, batch_size=batch_size, progress=False)
            seconds = time.perf_counter() - start
        if batch_size not in results or seconds < results[batch_size][0]:
            results[batch_size] = (seconds, frame)
    ref = results[2][1]["logprob_good"].to_numpy()
    base = results[2][0]
    print(f"{len(pairs)} pairs, accuracy {results[32][1]['correct'].mean():.3f}")
    print("| setting | time (s) | pairs/s | speed-up vs one pair per pass | max abs diff logprob |")
    print("|---|---|---|---|---|")
    for batch_size, (seconds, frame) in results.items():
        label = "one pair per pass" if batch_size == 2 else f"batched, {batch_size} sentences"
        diff = np.abs(frame["logprob_good"].to_numpy() - ref).max()
        print(
            f"| {label} | {seconds:.1f} | {len(pairs) / seconds:.1f} | {base / seconds:.2f} | "
            f"{diff:.1e} |"
        )


if __name__ == "__main__":
    main()
