"""Speed and exactness of ``tl_localize.ridge.encode_sets`` against today's sklearn pipeline.

On the Tuckute et al. (2024) sentences (2,000 sentence-level language-network responses) and
the ``resid_post`` features of the project's default model (last-token pooling, all layers,
flattened to 17,280 columns), times

(a) one random 172-column set,
(b) that set + 10 other random 172-column sets (one ``encode_sets`` call),
(c) all 17,280 columns,
(d) (b) + (c) in one call -- what a ``brain_alignment`` call with 10 random controls fits,
(e) the 1,000-resample bootstrap interval (loop of ``_pearson`` vs ``pearson_rows``),

with the per-fold ``make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS))`` loop used today
(10-fold ``KFold(shuffle=True, random_state=0)``), and reports the largest |difference| in
Pearson r and whether every chosen penalty is equal. For (c) sklearn runs on every fold
unless ``--sklearn-all-folds K`` limits it to the first K folds: its time is then extrapolated
to all folds (marked "est.") and r compared on the sentences of those K folds.

Features are read from ``--features`` (default ``/tmp/tuckute_features.npy``, ``[2000, 30,
576]`` float32, as saved by ``sentence_features(...).numpy()``); when the file is missing they
are computed with ``tl_localize`` (about a minute) and saved there.

    python benchmarks/ridge_speed.py [--features PATH] [--folds 10] [--sklearn-all-folds K]
                                     [--repeat 2]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tl_localize.ridge import ALPHAS, bootstrap_index, encode_sets, fold_splits, pearson_rows

DATA = Path("/work/shared/data/brain/tuckute2024_language_network.csv")
FEATURES = Path("/tmp/tuckute_features.npy")
SET_SIZE = 172


def load_features(path: Path, data: Path) -> np.ndarray:
    if path.exists():
        return np.load(path)
    print(
        f"[ridge_speed] {path} not found: computing the features with tl_localize "
        "(default model, resid_post, last-token pooling; about a minute) ...",
        file=sys.stderr,
    )
    from tl_localize import load_model
    from tl_localize.brain import BrainData, sentence_features

    model = load_model()
    brain = BrainData.from_csv(data)
    feats = sentence_features(
        model, brain.sentences, site="resid_post", pooling="last", progress=False
    )
    feats = feats.numpy()
    np.save(path, feats)
    print(f"[ridge_speed] saved {feats.shape} features to {path}", file=sys.stderr)
    return feats


def sklearn_encode(x, y, splits):
    """Today's loop: one make_pipeline(StandardScaler(), RidgeCV) per fold."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    predicted = np.zeros_like(y)
    alphas = []
    for train, test in splits:
        pipe = make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS))
        pipe.fit(x[train], y[train])
        predicted[test] = pipe.predict(x[test]).reshape(len(test), -1)
        alphas.append(float(pipe[-1].alpha_))
    return predicted, np.array(alphas)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """brain.py's _pearson."""
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def median_r(predicted: np.ndarray, y: np.ndarray, rows: np.ndarray) -> float:
    return float(np.median([pearson(predicted[rows, j], y[rows, j]) for j in range(y.shape[1])]))


def timed(fn, *args, repeat: int = 1):
    """(best wall time of ``repeat`` runs, last output)."""
    best = math.inf
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", type=Path, default=FEATURES)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-random", type=int, default=10)
    parser.add_argument("--sklearn-all-folds", type=int, default=None)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument(
        "--repeat", type=int, default=2, help="encode_sets timings: best of this many runs"
    )
    args = parser.parse_args()

    frame = pd.read_csv(args.data)
    y = frame[["EffectSize"]].to_numpy(dtype=float)
    feats = load_features(args.features, args.data)
    n = len(y)
    if feats.shape[0] != n:
        raise SystemExit(f"{feats.shape[0]} feature rows for {n} sentences in {args.data}")
    flat = np.ascontiguousarray(feats.reshape(n, -1))
    p = flat.shape[1]
    splits = fold_splits(n, args.folds, args.seed)
    sets = [np.sort(np.random.default_rng(s).choice(p, SET_SIZE, replace=False))
            for s in range(1 + args.n_random)]  # fmt: skip
    print(
        f"{n} sentences x {p} columns ({flat.dtype}), {args.folds} folds, {len(ALPHAS)} "
        f"alphas; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
        f"numpy {np.__version__}",
        file=sys.stderr,
    )
    rows = []
    every = np.arange(n)

    def compare(fits, refs, sub_rows=None, n_folds=None):
        dr, same = 0.0, True
        for fit, (pred, alphas) in zip(fits, refs, strict=True):
            rr = every if sub_rows is None else sub_rows
            dr = max(dr, abs(median_r(fit.predicted, y, rr) - median_r(pred, y, rr)))
            same &= bool(np.array_equal(fit.alphas[: n_folds or len(alphas)], alphas))
        return dr, same

    # (a) and (b): sklearn on every fold of every set
    sk_times, refs = [], []
    for cols in sets:
        seconds, ref = timed(sklearn_encode, flat[:, cols], y, splits)
        sk_times.append(seconds)
        refs.append(ref)
    t_a, fits_a = timed(encode_sets, flat, sets[:1], y, splits, repeat=args.repeat)
    dr, same = compare(fits_a, refs[:1])
    rows.append(("(a) 1 set x 172", f"{sk_times[0]:.2f}", t_a, dr, same))
    t_b, fits_b = timed(encode_sets, flat, sets, y, splits, repeat=args.repeat)
    dr, same = compare(fits_b, refs)
    rows.append((f"(b) {len(sets)} sets x 172", f"{sum(sk_times):.2f}", t_b, dr, same))

    # (c): sklearn on every fold, or on the first K folds and extrapolated
    k = args.folds if args.sklearn_all_folds is None else args.sklearn_all_folds
    k = max(1, min(k, args.folds))
    sk_all, ref_all = timed(sklearn_encode, flat, y, splits[:k])
    sk_all_est = sk_all * args.folds / k
    est = "" if k == args.folds else f" (est.: {k} folds took {sk_all:.1f} s)"
    t_c, fits_c = timed(encode_sets, flat, [None], y, splits, repeat=args.repeat)
    sub = np.sort(np.concatenate([test for _, test in splits[:k]]))
    dr_c, same_c = compare(fits_c, [(ref_all[0], ref_all[1])], sub_rows=sub, n_folds=k)
    rows.append(
        (f"(c) all {p} columns", f"{sk_all_est:.1f}{est}", t_c, dr_c, same_c)
    )  # fmt: skip

    # (d): what one brain_alignment call fits
    t_d, fits_d = timed(encode_sets, flat, [*sets, None], y, splits, repeat=args.repeat)
    dr_d, same_d = compare(fits_d[:-1], refs)
    dr_d2, same_d2 = compare(fits_d[-1:], [ref_all], sub_rows=sub, n_folds=k)
    sk_d = f"{sum(sk_times) + sk_all_est:.1f}" + (" (est.)" if est else "")
    rows.append(
        ("(d) (b) + (c) in one call", sk_d, t_d, max(dr_d, dr_d2), same_d and same_d2)
    )  # fmt: skip

    # (e): bootstrap interval of the selected set
    pred = fits_b[0].predicted

    def boot_loop():
        rng = np.random.default_rng(args.seed)
        boot = []
        for _ in range(args.n_boot):
            idx = rng.integers(0, n, n)
            boot.append(np.median([pearson(pred[idx, j], y[idx, j]) for j in range(y.shape[1])]))
        return np.nanpercentile(boot, [2.5, 97.5])

    def boot_fast():
        index = bootstrap_index(n, args.n_boot, args.seed)
        return np.nanpercentile(np.median(pearson_rows(pred, y, index), axis=1), [2.5, 97.5])

    t_loop, ci_loop = timed(boot_loop)
    t_fast, ci_fast = timed(boot_fast, repeat=args.repeat)
    rows.append(
        (f"(e) bootstrap CI, {args.n_boot} resamples", f"{t_loop:.2f}", t_fast,
         float(np.max(np.abs(ci_loop - ci_fast))), "n/a")
    )  # fmt: skip

    print(
        "\n| case | sklearn loop (s) | encode_sets (s) | speed-up | max abs diff r | alphas equal |"
    )
    print("|---|---|---|---|---|---|")
    for label, sk, fast, dr, same in rows:
        sk_value = float(str(sk).split()[0])
        print(f"| {label} | {sk} | {fast:.2f} | {sk_value / fast:.1f}x | {dr:.1e} | {same} |")
    print(
        f"\n(c)/(d): r and alphas of the all-units set compared on the {k} folds sklearn ran "
        f"({len(sub)} sentences). "
        f"(e): max abs diff of the interval ends r_low/r_high. encode_sets and pearson_rows: "
        f"best of {args.repeat} runs. Load average at the end: "
        f"{os.getloadavg()[0]:.2f}."
    )


if __name__ == "__main__":
    main()
