"""The cost of brain alignment against the model pass that feeds it, on the Tuckute 2,000
sentences and the default model's language units (172 units of 17,280).

    python benchmarks/brain_speed.py [--data ../shared/data/brain/tuckute2024_language_network.csv]

Prints a markdown table, all in one run: the model pass (the features of every unit), the
selected set with 10 random controls (one call: every set fitted from shared per-fold
decompositions), and the set of all units; each against the model pass. The fits are
scikit-learn's ``make_pipeline(StandardScaler(), RidgeCV(alphas))`` per fold, computed by
``tl_localize.ridge``; the last rows compare them with scikit-learn itself on the selected
set and one control (same penalties, r to 1e-4). ``benchmarks/ridge_speed.py`` compares the
two on every case.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tl_localize import BrainData, brain_alignment, load_model, localize, sentence_features
from tl_localize.ridge import ALPHAS, fold_splits

DEFAULT = Path(__file__).resolve().parents[2] / "shared/data/brain/tuckute2024_language_network.csv"


def sklearn_r(x: np.ndarray, y: np.ndarray, splits: list) -> tuple[float, list[float]]:
    predicted = np.zeros_like(y)
    alphas = []
    for train, test in splits:
        encoder = make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS)).fit(x[train], y[train])
        predicted[test] = encoder.predict(x[test]).reshape(len(test), -1)
        alphas.append(float(encoder[-1].alpha_))
    return float(np.corrcoef(predicted[:, 0], y[:, 0])[0, 1]), alphas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT))
    args = parser.parse_args()
    data = BrainData.from_csv(args.data)
    model = load_model(dtype="float32")
    loc = localize(model, "language", progress=False)
    start = time.perf_counter()
    features = sentence_features(model, data.sentences, site="resid_post", progress=False)
    extract = time.perf_counter() - start

    start = time.perf_counter()
    result = brain_alignment(
        model, loc, data, n_random=10, match="uniform", include_all=False, features=features,
        progress=False,
    )  # fmt: skip
    controls = time.perf_counter() - start
    start = time.perf_counter()
    everything = brain_alignment(
        model, loc, data, n_random=0, match="uniform", include_all=True, features=features,
        progress=False,
    )  # fmt: skip
    with_all = time.perf_counter() - start
    start = time.perf_counter()
    brain_alignment(model, loc, data, n_random=0, match="uniform", include_all=False,
                    features=features, progress=False)  # fmt: skip
    selected_only = time.perf_counter() - start
    all_units = with_all - selected_only

    print(f"{len(data)} sentences, {features.shape[1] * features.shape[2]} units")
    print("| what | time (s) | x model pass | goal |")
    print("|---|---|---|---|")
    print(f"| model pass (features of every unit) | {extract:.1f} | 1.00 | |")
    print(f"| selected + 10 random controls (one call, with bootstrap and permutation test) | "
          f"{controls:.1f} | {controls / extract:.3f} | at most 0.1 |")  # fmt: skip
    print(f"| all {features.shape[1] * features.shape[2]} units | {all_units:.1f} | "
          f"{all_units / extract:.3f} | at most 0.3 |")  # fmt: skip

    flat = features.numpy().reshape(len(data), -1)
    y = data.responses.to_numpy(dtype=float)
    splits = fold_splits(len(data), 10, 0)
    table = result.table
    print()
    print("| set | r (tl_localize) | r (scikit-learn) | penalties equal |")
    print("|---|---|---|---|")
    for row, mask in ((0, loc.units.mask), (1, loc.units.random_like(0, "uniform").mask)):
        columns = mask.reshape(-1).nonzero().flatten().numpy()
        r, alphas = sklearn_r(flat[:, columns], y, splits)
        ours = table.iloc[row]
        same = bool(np.isclose(ours["alpha"], np.median(alphas)))
        print(f"| {ours['set']} | {ours['r']:.6f} | {r:.6f} | {same} |")
    print()
    print(everything.summary())


if __name__ == "__main__":
    main()
