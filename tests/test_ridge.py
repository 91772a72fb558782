"""tl_localize.ridge must reproduce the sklearn encoding pipeline it replaces, exactly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GroupKFold, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tl_localize import ridge
from tl_localize.errors import LocalizeError
from tl_localize.ridge import (
    ALPHAS,
    EncodingFit,
    bootstrap_index,
    encode_sets,
    fold_splits,
    pearson_rows,
)

N, P = 120, 300


def _data(n_resp: int, dtype: type, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Awkward features: heavy-tailed columns far from 0, a constant column, near-constant
    columns; responses driven by a sparse set of columns plus noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, P))
    x[:, :30] = rng.standard_t(2, (N, 30)) * 50 + 1e4  # heavy tails, mean far from 0
    x[:, 30:40] *= 1e-3
    x[:, 40] = 3.7  # constant
    x[:, 41] = 5.0 + 1e-9 * rng.standard_normal(N)  # near-constant (constant in float32)
    x[:, 42] = 0.1  # constant, not exactly representable
    x[:, 43] = 1e-16 * rng.standard_normal(N)  # tiny but not constant for StandardScaler
    weights = rng.standard_normal((P, n_resp)) * (rng.random((P, 1)) < 0.1)
    standardized = (x - x.mean(0)) / (x.std(0) + 1.0)
    y = standardized @ weights + 2.0 * rng.standard_normal((N, n_resp))
    return x.astype(dtype), y


def _sets() -> list[np.ndarray | None]:
    rng = np.random.default_rng(1)
    return [
        rng.choice(P, 40, replace=False),  # k < n_train ("cov" form), 3 sets fit as a batch
        rng.choice(P, 40, replace=False),
        rng.choice(P, 40, replace=False),
        rng.choice(P, 200, replace=False),  # k > n_train (kernel form)
        None,  # all columns (kernel form)
        np.array([7]),  # a single column
        np.arange(96),  # k == n_train: the kernel form, as sklearn
        np.array([40, 41, 42, 43, 5]),  # mostly (near-)constant columns
        np.array([40, 42]),  # constant columns only: every penalty ties, the first wins
    ]


def _sklearn(x, y, cols, splits):
    xs = x if cols is None else x[:, cols]
    predicted = np.zeros_like(y)
    alphas = []
    for train, test in splits:
        pipe = make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS))
        pipe.fit(xs[train], y[train])
        predicted[test] = pipe.predict(xs[test]).reshape(len(test), -1)
        alphas.append(pipe[-1].alpha_)
    return predicted, np.array(alphas)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_resp", [1, 3])
def test_encode_sets_matches_sklearn_pipeline(dtype, n_resp):
    x, y = _data(n_resp, dtype)
    splits = fold_splits(N, 5, seed=0)
    sets = _sets()
    fits = encode_sets(x, sets, y, splits)
    assert len(fits) == len(sets)
    chosen = []
    for cols, fit in zip(sets, fits, strict=True):
        assert isinstance(fit, EncodingFit)
        expected, expected_alphas = _sklearn(x, y, cols, splits)
        assert fit.predicted.shape == (N, n_resp)
        assert fit.alphas.shape == (len(splits),)
        np.testing.assert_array_equal(fit.alphas, expected_alphas)
        # float32 features: sklearn rounds the coefficients to float32 and predicts in
        # float32, so a rounding of one coefficient may differ in the last bit.
        if dtype == np.float32:  # sklearn predicts in float32 from float32 features
            assert np.array_equal(fit.predicted.astype(np.float32), fit.predicted)
        rtol = 1e-9 if dtype == np.float64 else 1e-4
        np.testing.assert_allclose(fit.predicted, expected, rtol=rtol, atol=rtol * np.abs(y).max())
        for j in range(n_resp):
            r_fast = np.corrcoef(fit.predicted[:, j], y[:, j])[0, 1]
            r_ref = np.corrcoef(expected[:, j], y[:, j])[0, 1]
            # float32 features: the kernel form of wide sets runs in float32
            assert abs(r_fast - r_ref) < (1e-7 if dtype == np.float64 else 1e-6)
        chosen.extend(fit.alphas)
    # the data must exercise the penalty choice, not sit at one end of the grid
    assert len(set(chosen)) >= 4


def _wide(seed: int = 0, n: int = 150, p: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A float32 design wider than its rows with correlated columns, and two responses it
    drives: the best penalty sits inside the grid, well ahead of the others."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p)) @ rng.standard_normal((p, p)) * 0.1
    x += rng.standard_normal((n, p))
    weights = rng.standard_normal((p, 2)) * (rng.random((p, 1)) < 0.2)
    y = x @ weights + 5 * rng.standard_normal((n, 2))
    return x.astype(np.float32), y


def _count_float64_kernels(monkeypatch) -> dict[str, int]:
    calls = {"n": 0}
    original = ridge._kernel_gram

    def counting(z):
        calls["n"] += 1
        return original(z)

    monkeypatch.setattr(ridge, "_kernel_gram", counting)
    return calls


def test_float32_kernel_matches_sklearn_without_float64(monkeypatch):
    """A clear penalty choice is made in float32 in every fold (no float64 kernel is built)
    and equals sklearn's, with r to 1e-6."""
    x, y = _wide()
    splits = fold_splits(len(x), 5, seed=0)
    calls = _count_float64_kernels(monkeypatch)
    (fit,) = encode_sets(x, [None], y, splits)
    assert calls["n"] == 0
    expected, expected_alphas = _sklearn(x, y, None, splits)
    np.testing.assert_array_equal(fit.alphas, expected_alphas)
    assert 1e-3 < fit.alphas.min() and fit.alphas.max() < 1e7  # inside the grid
    np.testing.assert_allclose(fit.predicted, expected, rtol=1e-4, atol=1e-4 * np.abs(y).max())
    for j in range(y.shape[1]):
        r_fast = np.corrcoef(fit.predicted[:, j], y[:, j])[0, 1]
        r_ref = np.corrcoef(expected[:, j], y[:, j])[0, 1]
        assert abs(r_fast - r_ref) < 1e-6
    # the same fit forced through float64 agrees
    monkeypatch.setattr(ridge, "_kernel_fit32", lambda *args: None)
    (exact,) = encode_sets(x, [None], y, splits)
    np.testing.assert_array_equal(exact.alphas, fit.alphas)
    np.testing.assert_allclose(
        fit.predicted, exact.predicted, rtol=1e-4, atol=1e-4 * np.abs(y).max()
    )


def test_float32_kernel_falls_back_when_too_close_to_call(monkeypatch):
    """Responses that are pure noise leave the large penalties' scores within float32's error
    of each other: those folds are refit in float64 and still choose sklearn's penalty."""
    x, _ = _wide()
    noise = np.random.default_rng(7).standard_normal((len(x), 1))
    splits = fold_splits(len(x), 5, seed=0)
    calls = _count_float64_kernels(monkeypatch)
    (fit,) = encode_sets(x, [None], noise, splits)
    assert calls["n"] >= 1
    expected, expected_alphas = _sklearn(x, noise, None, splits)
    np.testing.assert_array_equal(fit.alphas, expected_alphas)
    np.testing.assert_allclose(fit.predicted, expected, rtol=1e-4, atol=1e-6)


def test_float32_kernel_deflates_the_constant_direction(monkeypatch):
    """The centered kernel's null vector (constant) is removed exactly: the float32 path's
    leave-one-out scores equal the float64 ones for every penalty, the smallest included,
    where an eigenvalue of float32 size instead of 0 would spoil them."""
    x, y = _wide(seed=3)
    train = np.arange(120)
    mean, scale = ridge._scaler_stats(np.ascontiguousarray(x[train]))
    z = ridge._standardize(np.ascontiguousarray(x[train]), mean, scale)
    yc = y[train] - y[train].mean(0)
    seen = []
    original = ridge._loo_scores

    def spy(num, den, n_alpha):
        seen.append(original(num, den, n_alpha))
        return seen[-1]

    monkeypatch.setattr(ridge, "_loo_scores", spy)
    ridge._kernel_fit32(z, yc, ALPHAS)
    _, gram = ridge._kernel_gram(z)
    ridge._ridge_kernel(gram, yc, ALPHAS)
    fast, exact = seen
    np.testing.assert_allclose(fast, exact, rtol=1e-4)


def test_encode_sets_batching_does_not_change_results(monkeypatch):
    x, y = _data(2, np.float64, seed=5)
    splits = fold_splits(N, 5, seed=1)
    rng = np.random.default_rng(2)
    sets = [rng.choice(P, 30, replace=False) for _ in range(4)] + [np.arange(10)]
    together = encode_sets(x, sets, y, splits)
    monkeypatch.setattr(ridge, "_COV_BATCH_BYTES", 1)  # one set per batch
    alone = encode_sets(x, sets, y, splits)
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_array_equal(a.alphas, b.alphas)
        np.testing.assert_allclose(a.predicted, b.predicted, rtol=1e-10, atol=1e-12)
    # and each is still the pipeline's answer
    expected, expected_alphas = _sklearn(x, y, sets[2], splits)
    np.testing.assert_array_equal(together[2].alphas, expected_alphas)
    np.testing.assert_allclose(together[2].predicted, expected, rtol=1e-9, atol=1e-9)
    assert encode_sets(x, [], y, splits) == []


def test_encode_sets_boolean_mask_and_duplicated_sets():
    x, y = _data(1, np.float64, seed=3)
    splits = fold_splits(N, 4, seed=2)
    cols = np.random.default_rng(0).choice(P, 50, replace=False)
    mask = np.zeros(P, dtype=bool)
    mask[cols] = True
    by_index, by_mask, again = encode_sets(x, [np.sort(cols), mask, np.sort(cols)], y, splits)
    np.testing.assert_array_equal(by_index.predicted, by_mask.predicted)
    np.testing.assert_array_equal(by_index.predicted, again.predicted)
    expected, expected_alphas = _sklearn(x, y, np.sort(cols), splits)
    np.testing.assert_array_equal(by_index.alphas, expected_alphas)
    np.testing.assert_allclose(by_index.predicted, expected, rtol=1e-9, atol=1e-9)


def test_encode_sets_custom_alphas_and_1d_y():
    x, y = _data(1, np.float64, seed=4)
    splits = fold_splits(N, 3, seed=5)
    alphas = [1e4, 10.0, 1e-2]  # not sorted: ties and order follow the given order
    (fit,) = encode_sets(x, [np.arange(20, 70)], y[:, 0], splits, alphas=alphas)
    pred = np.zeros(N)
    chosen = []
    for train, test in splits:
        pipe = make_pipeline(StandardScaler(), RidgeCV(alphas=alphas))
        pipe.fit(x[train][:, 20:70], y[train, 0])
        pred[test] = pipe.predict(x[test][:, 20:70])
        chosen.append(pipe[-1].alpha_)
    np.testing.assert_array_equal(fit.alphas, chosen)
    np.testing.assert_allclose(fit.predicted[:, 0], pred, rtol=1e-9, atol=1e-9)


def test_encode_sets_rejects_bad_input():
    x, y = _data(1, np.float64)
    splits = fold_splits(N, 5, seed=0)
    with pytest.raises(LocalizeError, match="empty"):
        encode_sets(x, [np.array([], dtype=int)], y, splits)
    with pytest.raises(LocalizeError, match="column indices"):
        encode_sets(x, [np.array([P])], y, splits)
    with pytest.raises(LocalizeError, match="y has shape"):
        encode_sets(x, [None], y[:-1], splits)
    bad = x.copy()
    bad[3, 5] = np.nan
    with pytest.raises(LocalizeError, match="NaN"):
        encode_sets(bad, [np.array([5])], y, splits)
    with pytest.raises(LocalizeError, match="alphas"):
        encode_sets(x, [None], y, splits, alphas=[1.0, -1.0])


@pytest.mark.parametrize(
    ("n", "folds", "seed"), [(120, 5, 0), (2000, 10, 0), (23, 4, 7), (10, 10, 3)]
)
def test_fold_splits_equal_kfold(n, folds, seed):
    ours = fold_splits(n, folds, seed)
    theirs = list(KFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros((n, 1))))
    assert len(ours) == len(theirs) == folds
    for (train, test), (train_ref, test_ref) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(train, train_ref)
        np.testing.assert_array_equal(test, test_ref)


def test_fold_splits_equal_group_kfold():
    groups = np.random.default_rng(0).integers(0, 17, 90)
    ours = fold_splits(90, 5, seed=0, groups=groups)
    theirs = list(GroupKFold(n_splits=5).split(np.zeros((90, 1)), None, groups))
    assert len(ours) == 5
    for (train, test), (train_ref, test_ref) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(train, train_ref)
        np.testing.assert_array_equal(test, test_ref)
        assert not set(groups[train]) & set(groups[test])
    # folds of unequal size go through encode_sets too
    assert len({len(test) for _, test in ours}) > 1
    x, y = _data(1, np.float32)
    cols = np.arange(50, 80)
    (fit,) = encode_sets(x[:90], [cols], y[:90], ours)
    expected, expected_alphas = _sklearn(x[:90], y[:90], cols, ours)
    np.testing.assert_array_equal(fit.alphas, expected_alphas)
    np.testing.assert_allclose(fit.predicted, expected, rtol=1e-4, atol=1e-4)


def test_fold_splits_errors():
    with pytest.raises(LocalizeError, match="at least 2"):
        fold_splits(10, 1, 0)
    with pytest.raises(LocalizeError, match="cannot be split"):
        fold_splits(3, 5, 0)
    with pytest.raises(LocalizeError, match="groups"):
        fold_splits(10, 5, 0, groups=np.array([0, 1] * 5))


def test_bootstrap_index_is_the_loop_stream():
    for n in (7, 2000):  # odd n: one call per resample matters for the random stream
        rng = np.random.default_rng(11)
        expected = np.stack([rng.integers(0, n, n) for _ in range(25)])
        np.testing.assert_array_equal(bootstrap_index(n, 25, 11), expected)


def test_pearson_rows_equals_loop():
    rng = np.random.default_rng(0)
    n, n_resp = 40, 3
    y = rng.standard_normal((n, n_resp)) + 100.0
    predicted = 0.5 * y + rng.standard_normal((n, n_resp))
    predicted[:, 2] = 0.3 * y[:, 2] + 0.01 * rng.standard_normal(n)  # strong correlation
    index = bootstrap_index(n, 60, seed=1)
    index[5] = 4  # a resample of one sentence: both sides constant -> NaN
    got = pearson_rows(predicted, y, index)
    assert got.shape == (60, n_resp)
    for b in range(60):
        for j in range(n_resp):
            a, t = predicted[index[b], j], y[index[b], j]
            if b == 5:
                assert np.isnan(got[b, j])
            else:
                assert got[b, j] == pytest.approx(np.corrcoef(a, t)[0, 1], abs=1e-12)
                assert got[b, j] == pytest.approx(pearsonr(a, t).statistic, abs=1e-12)
    assert np.nanmin(got[:, 2]) > 0.9


def test_pearson_rows_constant_side_and_1d():
    y = np.arange(10.0)
    predicted = np.ones(10)
    predicted[0] = 2.0
    index = np.array([[1, 2, 3, 4], [0, 1, 2, 3]])
    got = pearson_rows(predicted, y, index)
    assert got.shape == (2, 1)
    assert np.isnan(got[0, 0])  # predicted constant over this resample
    assert got[1, 0] == pytest.approx(np.corrcoef(predicted[[0, 1, 2, 3]], y[[0, 1, 2, 3]])[0, 1])
