"""Time to score random controls in brain alignment, and how it grows with their number.

    python benchmarks/brain_speed.py [--data ../shared/data/brain/tuckute2024_language_network.csv]

The model runs once over the sentences (feature extraction); each unit set then costs one
cross-validated ridge fit on its columns. Prints a markdown table: total time for 0, 10 and
20 random controls, with the model pass and the fitting timed separately.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tl_localize import BrainData, brain_alignment, load_model, localize, sentence_features

DEFAULT = Path(__file__).resolve().parents[2] / "shared/data/brain/tuckute2024_language_network.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT))
    args = parser.parse_args()
    data = BrainData.from_csv(args.data)
    model = load_model()
    loc = localize(model, "language", progress=False)
    start = time.perf_counter()
    features = sentence_features(model, data.sentences, "resid_post", progress=False)
    extract = time.perf_counter() - start
    print(f"{len(data)} sentences; one model pass: {extract:.1f} s")
    print("| random controls | model pass (s) | ridge fits (s) | total (s) | total / total at 10 |")
    print("|---|---|---|---|---|")
    rows = []
    for n_random in (0, 10, 20):
        start = time.perf_counter()
        brain_alignment(
            model, loc, data, n_random=n_random, include_all=False, features=features,
            progress=False,
        )  # fmt: skip
        rows.append((n_random, time.perf_counter() - start))
    at10 = extract + rows[1][1]
    for n_random, fit in rows:
        total = extract + fit
        print(f"| {n_random} | {extract:.1f} | {fit:.1f} | {total:.1f} | {total / at10:.2f} |")


if __name__ == "__main__":
    main()
