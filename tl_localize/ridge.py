"""Fast cross-validated ridge encoding, numerically the same as today's sklearn pipeline.

Brain alignment predicts an fMRI response per sentence from the pooled activations of a
unit set with, per fold, ``make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS))`` (efficient
leave-one-out choice of the penalty, intercept fitted and unpenalized, one penalty shared by
all responses). Fitting that pipeline for each unit set and fold repeats a lot of work;
:func:`encode_sets` computes the *same* out-of-fold predictions and the *same* chosen
penalties while sharing the work:

* per fold, the standardization statistics of every column used by any set are computed once
  (with ``StandardScaler``'s arithmetic) and reused by all sets;
* per fold and set, ONE eigendecomposition serves all penalties: of the ``k x k`` matrix
  ``a'a`` of the standardized, centered ``n_train x k`` design ``a`` when ``k < n_train``
  (this is its thin SVD: ``a'a = V S^2 V'``, ``a V = U S``), else of the ``n_train x
  n_train`` kernel ``a a'`` (the kernel form when units outnumber sentences), which is built
  from float64 column blocks with ``dsyrk`` without a float64 copy of the whole design;
* the leave-one-out errors of all penalties come out of a few matrix products;
* for float32 features the kernel form runs in float32 (``ssyrk``, ``ssyevd``: half the time
  of the float64 kernel and eigendecomposition, two thirds of an all-units fit), with the
  constant direction deflated exactly and every later step in float64. It is used only where
  it cannot change the chosen penalty: a fold whose best leave-one-out score is not ahead of
  every other by a bound on the float32 error (16 times the largest error measured) is refit
  in float64, as sklearn computes it. Predictions then agree with sklearn's to about 1e-6
  relative (r to 1e-7 on the Tuckute sentences) instead of 1e-9; float64 features always
  take the float64 path.

What is replicated from sklearn 1.9 (``sklearn/preprocessing/_data.py``,
``sklearn/utils/extmath.py`` and ``sklearn/linear_model/_ridge.py``, class ``_RidgeGCV``):

* ``StandardScaler``: mean and *population* variance (ddof=0) accumulated in float64 with the
  corrected two-pass algorithm of ``_incremental_mean_and_var``; a column is constant when
  ``var <= n*eps*var + (n*mean*eps)**2`` (``_is_constant_feature``, float64 eps) and then gets
  scale 1 (``_handle_zeros_in_scale``). ``transform`` keeps the input dtype: for float32
  features the mean and scale are cast to float32 and ``x -= mean; x /= scale`` run in
  float32, exactly as here.
* ``RidgeCV`` (``cv=None``, ``gcv_mode=None``, ``fit_intercept=True``): the standardized
  design is cast to float64 and centered by its own column means (``x_offset``), ``y`` by
  its means; the intercept is not penalized. sklearn decomposes ``X'X`` (``"cov"``) when
  ``n_train > k`` and ``XX'`` (``"gram"``) otherwise -- the same choice is made here. The
  leave-one-out residual is ``c_i / d_i`` as in ``_solve_eigen_covariance`` /
  ``_solve_eigen_gram``, including the intercept term ``- (G^-1 1)_i / n`` of ``d``. The score
  of a penalty is ``-mean(looe**2)`` over samples *and* responses (``scoring=None``,
  ``alpha_per_target=False``); penalties are tried in the given order and a later one wins
  only if its score is strictly greater (the first maximum; ties keep the earlier penalty).
* Prediction: ``intercept_ = y_offset - x_offset @ coef_``; with float32 features sklearn
  casts ``coef_`` and ``intercept_`` to float32 and predicts in float32 (``Z32 @ coef32 +
  intercept32``); done the same way here.

Only numpy and scipy are imported; :func:`fold_splits` imports sklearn lazily for groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import linalg as sla
from scipy.linalg import blas as sblas

from .errors import LocalizeError

__all__ = [
    "ALPHAS",
    "EncodingFit",
    "bootstrap_index",
    "encode_sets",
    "fold_splits",
    "pearson_rows",
]

ALPHAS = np.logspace(-3, 7, 21)

_EPS64 = np.finfo(np.float64).eps
_EPS32 = float(np.finfo(np.float32).eps)
# The float32 kernel's error bound on a score, in units of eps32 (1 + lambda_max / (lambda_min
# + alpha)) times the score: 16 times the largest error measured (4 such units).
_F32_SLACK = 64.0
# Columns per chunk when computing the scaler statistics (keeps the float64 temporaries small).
_STATS_CHUNK = 256
# Columns per float64 block when building the kernel of a wide design.
_GRAM_CHUNK = 2048
# Bytes of the float64 row blocks when forming the primal coefficients of the kernel form.
_ROW_BLOCK_BYTES = 1 * 2**20
# LAPACK driver of the kernel eigendecomposition (divide and conquer).
_EIGH_DRIVER = "evd"
# Bytes of float64 work arrays per batch of equal-size unit sets in the "cov" form.
_COV_BATCH_BYTES = 256 * 2**20
# Bytes of the float64 gather arrays per chunk in pearson_rows.
_BOOT_CHUNK_BYTES = 64 * 2**20


@dataclass
class EncodingFit:
    """The cross-validated ridge fit of one unit set.

    Attributes:
        predicted: ``[n_sentences, n_responses]`` out-of-fold predictions (float64).
        alphas: ``[n_folds]`` the penalty chosen in each fold (sklearn's ``RidgeCV.alpha_``).
    """

    predicted: np.ndarray
    alphas: np.ndarray


# ----------------------------------------------------------------------------------------
# folds and bootstrap
# ----------------------------------------------------------------------------------------


def fold_splits(
    n: int, folds: int, seed: int, groups: Sequence | np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``(train, test)`` index pairs of ``KFold(n_splits=folds, shuffle=True,
    random_state=seed)`` or, with ``groups``, of ``GroupKFold(n_splits=folds)``.

    Both arrays of a pair are sorted, as sklearn returns them.
    """
    n, folds = int(n), int(folds)
    if folds < 2:
        raise LocalizeError(f"folds must be at least 2, got {folds}.")
    if n < folds:
        raise LocalizeError(
            f"{n} sentences cannot be split into {folds} folds; use folds <= {n} or more data."
        )
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise LocalizeError(f"groups has shape {groups.shape}, expected ({n},).")
        n_groups = len(np.unique(groups))
        if n_groups < folds:
            raise LocalizeError(f"{n_groups} groups cannot be split into {folds} folds.")
        from sklearn.model_selection import GroupKFold  # lazy: sklearn only for groups

        dummy = np.zeros((n, 1))
        return [
            (np.asarray(train), np.asarray(test))
            for train, test in GroupKFold(n_splits=folds).split(dummy, None, groups)
        ]
    # KFold(shuffle=True): RandomState(seed).shuffle(arange(n)), then consecutive chunks,
    # the first n % folds of them one longer; test and train are returned sorted.
    indices = np.arange(n)
    np.random.RandomState(seed).shuffle(indices)
    sizes = np.full(folds, n // folds, dtype=int)
    sizes[: n % folds] += 1
    splits = []
    start = 0
    for size in sizes:
        mask = np.zeros(n, dtype=bool)
        mask[indices[start : start + size]] = True
        splits.append((np.flatnonzero(~mask), np.flatnonzero(mask)))
        start += size
    return splits


def bootstrap_index(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, n]`` resample matrix: row ``b`` is the ``b``-th ``rng.integers(0, n, n)`` of
    ``rng = np.random.default_rng(seed)`` (one call per resample, the same stream as a loop)."""
    rng = np.random.default_rng(seed)
    index = np.empty((int(n_boot), int(n)), dtype=np.int64)
    for b in range(int(n_boot)):
        index[b] = rng.integers(0, n, n)
    return index


def pearson_rows(predicted: np.ndarray, y: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Pearson r of every bootstrap resample and response column, vectorised.

    Args:
        predicted: ``[n, R]`` (or ``[n]``) predictions.
        y: the responses, the same shape.
        index: ``[n_boot, m]`` integer resample matrix (rows index the ``n`` sentences).

    Returns:
        ``[n_boot, R]``: r of ``predicted[index[b], j]`` vs ``y[index[b], j]``; NaN where either
        is constant over the resample. No Python loop over resamples (only over chunks).
    """
    p = np.asarray(predicted, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    if p.ndim == 1:
        p = p[:, None]
    if t.ndim == 1:
        t = t[:, None]
    if p.shape != t.shape or p.ndim != 2:
        raise LocalizeError(
            f"predicted {np.shape(predicted)} and y {np.shape(y)} must have the same [n, R] shape."
        )
    index = np.asarray(index)
    if index.ndim != 2 or not np.issubdtype(index.dtype, np.integer):
        raise LocalizeError(f"index must be a 2-D integer array, got {index.dtype} {index.shape}.")
    n_boot, m = index.shape
    n_resp = p.shape[1]
    out = np.empty((n_boot, n_resp), dtype=np.float64)
    if n_boot == 0:
        return out
    if m == 0:
        out.fill(np.nan)
        return out
    # Work on data centered by the overall means: smaller numbers, same r.
    p = p - p.mean(axis=0)
    t = t - t.mean(axis=0)
    chunk = max(1, _BOOT_CHUNK_BYTES // (8 * m * n_resp))
    for start in range(0, n_boot, chunk):
        idx = index[start : start + chunk]
        a = p[idx]  # [b, m, R]
        b = t[idx]
        const = (a.max(axis=1) == a.min(axis=1)) | (b.max(axis=1) == b.min(axis=1))
        a -= a.mean(axis=1, keepdims=True)
        b -= b.mean(axis=1, keepdims=True)
        num = np.einsum("bmr,bmr->br", a, b)
        den = np.sqrt(np.einsum("bmr,bmr->br", a, a) * np.einsum("bmr,bmr->br", b, b))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = num / den
        r[const | (den == 0)] = np.nan
        out[start : start + chunk] = r
    return out


# ----------------------------------------------------------------------------------------
# StandardScaler, replicated
# ----------------------------------------------------------------------------------------


def _scaler_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``StandardScaler().fit(x)``'s ``mean_`` and ``scale_`` (float64), computed the same way:
    float64 accumulation, corrected two-pass variance, near-constant columns get scale 1.
    ``x`` is the (C-contiguous) training block; columns are processed in chunks, which does
    not change any result (each column is reduced on its own, row after row)."""
    n, k = x.shape
    mean = np.empty(k, dtype=np.float64)
    var = np.empty(k, dtype=np.float64)
    count = np.float64(n)
    buffer = np.empty(n * min(k, _STATS_CHUNK), dtype=np.float64)
    for start in range(0, k, _STATS_CHUNK):
        block = x[:, start : start + _STATS_CHUNK]
        new_sum = np.sum(block, axis=0, dtype=np.float64)
        mean_c = new_sum / count
        temp = buffer[: block.size].reshape(block.shape)
        np.subtract(block, mean_c, out=temp)  # float64
        correction = np.sum(temp, axis=0)
        np.square(temp, out=temp)
        unnormalized = np.sum(temp, axis=0)
        unnormalized -= correction**2 / count
        mean[start : start + _STATS_CHUNK] = mean_c
        var[start : start + _STATS_CHUNK] = unnormalized / count
    constant = var <= n * _EPS64 * var + (n * mean * _EPS64) ** 2
    scale = np.sqrt(var)
    scale[constant] = 1.0
    return mean, scale


def _standardize(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``StandardScaler.transform`` in place on ``x`` (a fresh copy): subtract then divide by
    the statistics cast to ``x``'s dtype."""
    x -= mean.astype(x.dtype)
    x /= scale.astype(x.dtype)
    return x


# ----------------------------------------------------------------------------------------
# RidgeCV (efficient leave-one-out), replicated for all penalties at once
# ----------------------------------------------------------------------------------------


def _best_index(scores: np.ndarray) -> int:
    """sklearn's selection loop: the first penalty, replaced only by a strictly better one."""
    best = 0
    for i in range(1, len(scores)):
        if scores[i] > scores[best]:
            best = i
    return best


def _loo_scores(looe_num: np.ndarray, looe_den: np.ndarray, n_alpha: int) -> np.ndarray:
    """``-mean(looe**2)`` per penalty; ``looe_num`` is ``[n, A*R]`` (penalty-major), ``looe_den``
    is ``[n, A]``."""
    n = looe_num.shape[0]
    looe = looe_num.reshape(n, n_alpha, -1) / looe_den[:, :, None]
    return -np.mean(looe**2, axis=(0, 2))


def _ridge_cov(a: np.ndarray, yc: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centered designs ``a`` ``[G, n, k]`` (``k < n``, G sets fit together): one
    decomposition per set for all penalties.

    The thin SVD ``a = U S V'`` is taken through the eigendecomposition ``a'a = V S^2 V'``
    (``W = a V = U S``): sklearn's own ``gcv_mode="cov"`` for ``n_samples > n_features`` and,
    for these tall designs, several times faster than LAPACK's SVD. Stacking the sets keeps
    the BLAS calls back to back (many small separate calls are slow with threaded BLAS).
    Leave-one-out as ``_solve_eigen_covariance``: with ``D = 1/(s^2 + alpha)``,
    ``c = y - W D W'y``, ``d = 1 - diag(W D W') - (1 - W D W'1)/n``, ``looe = c / d``.
    Returns the chosen penalty index per set ``[G]`` and the coefficients ``V D W'y``
    ``[G, k, R]``.
    """
    n_sets, n, k = a.shape
    n_alpha, n_resp = len(alphas), yc.shape[1]
    at = a.transpose(0, 2, 1)
    lam, v = np.linalg.eigh(np.matmul(at, a))  # [G, k], [G, k, k]
    w = np.matmul(a, v)  # [G, n, k] = U S
    wty = np.matmul(w.transpose(0, 2, 1), yc)  # [G, k, R]
    wt1 = w.sum(axis=1)  # [G, k] = W' 1
    dinv_t = 1.0 / (lam[:, :, None] + alphas[None, None, :])  # [G, k, A]
    rhs = (dinv_t[:, :, :, None] * wty[:, :, None, :]).reshape(n_sets, k, n_alpha * n_resp)
    c = yc[None, :, None, :] - np.matmul(w, rhs).reshape(n_sets, n, n_alpha, n_resp)
    d = 1.0 - np.matmul(w * w, dinv_t)  # [G, n, A]
    d -= (1.0 - np.matmul(w, dinv_t * wt1[:, :, None])) / n
    scores = -np.mean((c / d[..., None]) ** 2, axis=(1, 3))  # [G, A]
    best = np.array([_best_index(row) for row in scores], dtype=np.intp)
    picked = dinv_t[np.arange(n_sets), :, best]  # [G, k]
    coef = np.matmul(v, picked[:, :, None] * wty)
    return best, coef


def _kernel_gram(z_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RidgeCV's centering offset ``x_offset`` (column means of the float64 design) and the
    kernel ``K = a a'`` of the centered design ``a`` (lower triangle), built column block by
    column block: each block is cast to float64, centered and added with one ``dsyrk``, so
    the full float64 copy of a wide design is never formed."""
    n, k = z_train.shape
    x_offset = np.empty(k, dtype=np.float64)
    buffer = np.empty(n * min(k, _GRAM_CHUNK), dtype=np.float64)
    gram = np.zeros((n, n), dtype=np.float64, order="F")
    for start in range(0, k, _GRAM_CHUNK):
        part = z_train[:, start : start + _GRAM_CHUNK]
        offset = np.mean(part, axis=0, dtype=np.float64)
        block = buffer[: part.size].reshape(part.shape)
        np.subtract(part, offset, out=block)  # float64 copy, centered
        x_offset[start : start + _GRAM_CHUNK] = offset
        # block' is Fortran-ordered: trans=1 gives block @ block' without copying block;
        # the Fortran-ordered gram is updated in place.
        gram = sblas.dsyrk(1.0, block.T, trans=1, lower=1, beta=1.0, c=gram, overwrite_c=1)
    return x_offset, gram


def _kernel_coef(z_train: np.ndarray, x_offset: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a' c`` for the centered float64 design ``a``, accumulated over (contiguous) row
    blocks cast to float64 one at a time."""
    n, k = z_train.shape
    coef = np.zeros((k, c.shape[1]), dtype=np.float64)
    rows = max(1, _ROW_BLOCK_BYTES // (8 * k))
    buffer = np.empty(min(n, rows) * k, dtype=np.float64)
    for start in range(0, n, rows):
        part = z_train[start : start + rows]
        block = buffer[: part.size].reshape(part.shape)
        np.subtract(part, x_offset, out=block)
        coef += block.T @ c[start : start + rows]
    return coef


def _ridge_kernel(gram: np.ndarray, yc: np.ndarray, alphas: np.ndarray) -> tuple[int, np.ndarray]:
    """Kernel ``K = a a'`` of the centered design (lower triangle, overwritten): one
    eigendecomposition for all penalties.

    Leave-one-out as ``_solve_eigen_gram``: with ``D = 1/(w+alpha)``, ``c = Q D Q'y``,
    ``d = diag(Q D Q') - (Q D Q'1)/n``, ``looe = c / d``. Returns the chosen penalty's index
    and its dual coefficients ``c`` ``[n, R]`` (the primal ones are ``a' c``).
    """
    w, q = sla.eigh(gram, lower=True, overwrite_a=True, check_finite=False, driver=_EIGH_DRIVER)
    scores, dual = _loo_dual(w, q, yc, alphas)
    best = _best_index(scores)
    return best, dual[:, best, :]


def _loo_dual(
    w: np.ndarray, q: np.ndarray, yc: np.ndarray, alphas: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out scores ``[A]`` of every penalty and the dual coefficients ``[n, A, R]``
    from an eigendecomposition ``K = Q diag(w) Q'``, as ``_solve_eigen_gram``: with
    ``D = 1/(w+alpha)``, ``c = Q D Q'y``, ``d = diag(Q D Q') - (Q D Q'1)/n``, ``looe = c / d``."""
    n = q.shape[0]
    n_alpha, n_resp = len(alphas), yc.shape[1]
    qty = q.T @ yc  # [n, R]
    qt1 = q.sum(axis=0)  # Q' 1
    dinv = 1.0 / (w[None, :] + alphas[:, None])  # [A, n]
    c = q @ (dinv.T[:, :, None] * qty[:, None, :]).reshape(n, n_alpha * n_resp)
    d = (q * q) @ dinv.T  # [n, A]
    d -= (q @ (dinv.T * qt1[:, None])) / n
    return _loo_scores(c, d, n_alpha), c.reshape(n, n_alpha, n_resp)


def _kernel_fit32(
    z_train: np.ndarray, yc: np.ndarray, alphas: np.ndarray
) -> tuple[np.ndarray, int, np.ndarray] | None:
    """The kernel form of a float32 design in float32 arithmetic, where that cannot change
    the chosen penalty; ``None`` where it could (the caller then refits in float64).

    The float64 kernel and its eigendecomposition are two thirds of an all-units fit; in
    float32 both take half the time. The kernel ``z z'`` is accumulated by ``ssyrk`` from the
    standardized float32 rows (no copy). The centered kernel ``a a'`` (``a = z - 1 x_offset'``)
    has the constant vector ``h = 1/sqrt(n)`` in its null space, whose direction contributes
    exactly nothing to the leave-one-out residuals (the intercept term of ``d`` cancels it);
    in float32 its eigenvalue would come out near ``eps * lambda_max`` rather than 0 and spoil
    the smallest penalties. So it is deflated exactly: with the Householder reflection ``H``
    mapping ``h`` to ``e_1`` (in float64), ``H a a' H`` is ``H z z' H`` outside its first row
    and column, and only that ``(n-1) x (n-1)`` block is decomposed (``ssyevd``); the
    eigenvectors come back through ``H`` and every later step runs in float64.

    The guard: the relative error of each penalty's score, measured at most
    ``4 eps32 (1 + lambda_max / (lambda_min + alpha))`` on the Tuckute features and on the
    test designs, is bounded by ``_F32_SLACK eps32 (1 + lambda_max / (lambda_min + alpha))``
    (16 times the largest measured); unless the best score is ahead of every other by the two
    bounds together, ``None`` is returned.
    """
    n = z_train.shape[0]
    if n < 3:
        return None
    x_offset = np.asarray(np.mean(z_train, axis=0, dtype=np.float64))
    gram = sblas.ssyrk(1.0, z_train.T, trans=1, lower=1).astype(np.float64)  # lower: z z'
    u = np.full(n, 1.0 / np.sqrt(n))
    u[0] -= 1.0
    u /= np.linalg.norm(u)  # H = I - 2 u u' maps h to e_1
    p = sblas.dsymv(1.0, gram, u, lower=1)  # K u
    # H K H = K - (u s' + s u') with s = 2 K u - 2 (u'K u) u: one rank-2 update, in place
    s = 2.0 * p - 2.0 * float(u @ p) * u
    gram = sblas.dsyr2(-1.0, u, s, lower=1, a=gram, overwrite_a=1)
    block = np.asfortranarray(gram[1:, 1:], dtype=np.float32)
    del gram
    w32, v32 = sla.eigh(
        block, lower=True, overwrite_a=True, check_finite=False, driver=_EIGH_DRIVER
    )
    w = w32.astype(np.float64)
    v = v32.astype(np.float64)
    # The leave-one-out terms with Q = H [0; V], without forming Q: Q'1 = 0 (H 1 = sqrt(n)
    # e_1), so d is diag(Q D Q'); with t = V'u[1:], Q_ij = [0; V]_ij - 2 u_i t_j.
    n_alpha, n_resp = len(alphas), yc.shape[1]
    y_h = yc - 2.0 * np.outer(u, u @ yc)  # H y
    dinv = 1.0 / (w[None, :] + alphas[:, None])  # [A, n-1]
    vty = v.T @ y_h[1:]  # [n-1, R]
    c_block = v @ (dinv.T[:, :, None] * vty[:, None, :]).reshape(n - 1, n_alpha * n_resp)
    c = np.zeros((n, n_alpha * n_resp))
    c[1:] = c_block
    c -= 2.0 * np.outer(u, u[1:] @ c_block)  # H [0; c_block]
    t = u[1:] @ v  # [n-1]
    d = 4.0 * np.outer(u**2, dinv @ t**2)  # [n, A]
    d[1:] += (v * v) @ dinv.T - 4.0 * u[1:, None] * (v @ (dinv * t).T)
    scores = _loo_scores(c, d, n_alpha)
    dual = c.reshape(n, n_alpha, n_resp)
    if not np.isfinite(scores).all():
        return None
    lam_min, lam_max = float(w.min()), float(np.abs(w).max())
    with np.errstate(divide="ignore"):
        spread = np.where(lam_min + alphas > 0, lam_max / (lam_min + alphas), np.inf)
    tol = _F32_SLACK * _EPS32 * (1.0 + spread) * np.abs(scores)
    best = _best_index(scores)
    rivals = np.arange(len(alphas)) != best
    if not np.all(scores[best] - scores[rivals] > tol[best] + tol[rivals]):
        return None
    return x_offset, best, dual[:, best, :]


def _predict(
    z_test: np.ndarray, coef: np.ndarray, x_offset: np.ndarray, y_offset: np.ndarray
) -> np.ndarray:
    """``RidgeCV.predict`` of the standardized test rows (in their dtype) from the float64
    coefficients ``[k, R]``: ``coef_`` is ``[R, k]`` (raveled when R == 1), ``intercept_ =
    y_offset - x_offset @ coef_.T``, both cast to the features' dtype as sklearn does."""
    coef_ = coef.T
    if coef_.shape[0] == 1:
        coef_ = coef_.ravel()
        intercept = y_offset - x_offset @ coef_
    else:
        intercept = y_offset - x_offset @ coef_.T
    dtype = z_test.dtype
    coef_ = coef_.astype(dtype, copy=False)
    intercept = np.asarray(intercept).astype(dtype, copy=False)
    pred = z_test @ coef_ + intercept if coef_.ndim == 1 else z_test @ coef_.T + intercept
    return pred.reshape(len(z_test), -1)


def _fit_fold(
    z_train: np.ndarray,
    z_test: np.ndarray,
    positions: Sequence[np.ndarray | None],
    y_train: np.ndarray,
    alphas: np.ndarray,
) -> list[tuple[float, np.ndarray]]:
    """``RidgeCV(alphas).fit(z[:, cols], y_train).predict(z_test[:, cols])`` for every set's
    columns (``None``: all) of the standardized fold. Returns (alpha, predictions) per set."""
    n_train, p = z_train.shape
    y_offset = np.average(y_train, axis=0)
    yc = y_train - y_offset
    out: list[tuple[float, np.ndarray] | None] = [None] * len(positions)
    narrow: dict[int, list[int]] = {}  # k -> sets fit in the "cov" form, batched by size
    for s, pos in enumerate(positions):
        k = p if pos is None else len(pos)
        if k < n_train:
            narrow.setdefault(k, []).append(s)
            continue
        # sklearn's "gram" mode: one kernel eigendecomposition
        zt = z_train if pos is None else z_train[:, pos]
        ze = z_test if pos is None else z_test[:, pos]
        fast = _kernel_fit32(zt, yc, alphas) if zt.dtype == np.float32 else None
        if fast is not None:
            x_offset, best, dual = fast
        else:  # float64 features, or a penalty choice too close to call in float32
            x_offset, gram = _kernel_gram(zt)
            best, dual = _ridge_kernel(gram, yc, alphas)
            del gram
        coef = _kernel_coef(zt, x_offset, dual)
        out[s] = (float(alphas[best]), _predict(ze, coef, x_offset, y_offset))
    for k, members in narrow.items():
        per_set = 8 * n_train * (3 * k + 3 * len(alphas) * yc.shape[1])
        batch = max(1, _COV_BATCH_BYTES // per_set)
        for start in range(0, len(members), batch):
            group = members[start : start + batch]
            a = np.empty((len(group), n_train, k), dtype=np.float64)
            for g, s in enumerate(group):
                pos = positions[s]
                a[g] = z_train if pos is None else z_train[:, pos]  # RidgeCV's float64 copy
            x_offsets = np.average(a, axis=1)  # [G, k]
            a -= x_offsets[:, None, :]
            bests, coefs = _ridge_cov(a, yc, alphas)
            del a
            for g, s in enumerate(group):
                pos = positions[s]
                ze = z_test if pos is None else z_test[:, pos]
                pred = _predict(ze, coefs[g], x_offsets[g], y_offset)
                out[s] = (float(alphas[bests[g]]), pred)
    return [o for o in out if o is not None]


# ----------------------------------------------------------------------------------------
# public entry point
# ----------------------------------------------------------------------------------------


def _check_sets(sets: Sequence[np.ndarray | None], p: int) -> list[np.ndarray | None]:
    checked: list[np.ndarray | None] = []
    for i, cols in enumerate(sets):
        if cols is None:
            checked.append(None)
            continue
        cols = np.asarray(cols)
        if cols.dtype == bool:
            if cols.shape != (p,):
                raise LocalizeError(
                    f"set {i}: boolean mask of shape {cols.shape}, expected ({p},)."
                )
            cols = np.flatnonzero(cols)
        if cols.ndim != 1 or not np.issubdtype(cols.dtype, np.integer):
            raise LocalizeError(
                f"set {i}: expected a 1-D integer array of column indices (or None), "
                f"got {cols.dtype} {cols.shape}."
            )
        if cols.size == 0:
            raise LocalizeError(f"set {i} is empty: nothing to fit.")
        if cols.min() < -p or cols.max() >= p:
            raise LocalizeError(f"set {i}: column indices must be in [0, {p}).")
        checked.append(np.where(cols < 0, cols + p, cols).astype(np.intp))
    return checked


def encode_sets(
    features: np.ndarray,
    sets: Sequence[np.ndarray | None],
    y: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    alphas: np.ndarray | Sequence[float] = ALPHAS,
) -> list[EncodingFit]:
    """Out-of-fold predictions and chosen penalties of ``make_pipeline(StandardScaler(),
    RidgeCV(alphas=alphas))`` fit per fold, for every unit set at once.

    Args:
        features: ``[n, p]`` float32 or float64 (other dtypes are cast to float64). float32
            features are standardized and predicted in float32, as sklearn does.
        sets: per unit set, an integer array of column indices into ``features`` (or a
            boolean mask of length ``p``), or ``None`` for all columns.
        y: ``[n, R]`` (or ``[n]``) responses.
        splits: ``(train, test)`` index pairs, e.g. from :func:`fold_splits`.
        alphas: the penalties, tried in order (ties keep the earlier one).

    Returns:
        One :class:`EncodingFit` per set, in order. Rows of ``predicted`` that are in no test
        fold stay 0.

    Cost per fold: the scaler statistics of the columns any set uses (once); for sets with
    ``k < n_train`` one ``k x k`` eigendecomposition each (equal-size sets are stacked); for
    wider sets one ``n_train x n_train`` kernel (``n_train^2 k`` flops, ``dsyrk``; ``ssyrk``
    for float32 features where the penalty choice is clear in float32, see the module's
    notes) and its eigendecomposition -- the same two steps sklearn takes, but without
    sklearn's per-penalty ``X' c`` products and copies.
    """
    x = np.asarray(features)
    if x.ndim != 2:
        raise LocalizeError(f"features must be [n_sentences, n_features], got shape {x.shape}.")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    n, p = x.shape
    yy = np.asarray(y, dtype=np.float64)
    if yy.ndim == 1:
        yy = yy[:, None]
    if yy.ndim != 2 or yy.shape[0] != n:
        raise LocalizeError(f"y has shape {np.shape(y)}, expected ({n}, n_responses).")
    if not np.isfinite(yy).all():
        raise LocalizeError("y has NaN or infinite values; drop those sentences first.")
    alphas = np.asarray(alphas, dtype=np.float64).ravel()
    if alphas.size == 0 or not np.all(alphas > 0) or not np.isfinite(alphas).all():
        raise LocalizeError("alphas must be a non-empty list of positive finite penalties.")
    checked = _check_sets(sets, p)
    if not checked:
        return []
    splits = [(np.asarray(tr), np.asarray(te)) for tr, te in splits]
    if not splits:
        raise LocalizeError("splits is empty: give at least one (train, test) pair.")
    for f, (train, test) in enumerate(splits):
        for part in (train, test):
            if part.ndim != 1 or part.size == 0 or not np.issubdtype(part.dtype, np.integer):
                raise LocalizeError(
                    f"fold {f}: train and test must be non-empty 1-D integer index arrays."
                )
            if part.min() < 0 or part.max() >= n:
                raise LocalizeError(f"fold {f}: indices must be in [0, {n}).")

    # The columns any set uses, and where each set's columns sit among them.
    subsets = [c for c in checked if c is not None]
    used: np.ndarray | None = None
    positions: list[np.ndarray | None] = list(checked)
    if len(subsets) == len(checked):
        used, inverse = np.unique(np.concatenate(subsets), return_inverse=True)
        positions, start = [], 0
        for c in subsets:
            positions.append(inverse[start : start + len(c)])
            start += len(c)
        if len(used) == p:
            used = None
    xu = x if used is None else x[:, used]
    if not np.isfinite(xu).all():
        raise LocalizeError("features have NaN or infinite values in the selected columns.")

    n_resp = yy.shape[1]
    predicted = [np.zeros((n, n_resp), dtype=np.float64) for _ in checked]
    chosen = [np.empty(len(splits), dtype=np.float64) for _ in checked]
    # One buffer for the training rows of every fold (no fresh pages per fold).
    buffer = np.empty(max(len(tr) for tr, _ in splits) * xu.shape[1], dtype=xu.dtype)
    for f, (train, test) in enumerate(splits):
        x_train = buffer[: len(train) * xu.shape[1]].reshape(len(train), xu.shape[1])
        for i, row in enumerate(train):  # faster than np.take(..., out=) for wide rows
            x_train[i] = xu[row]
        mean, scale = _scaler_stats(x_train)
        z_train = _standardize(x_train, mean, scale)
        z_test = _standardize(xu[test], mean, scale)
        fitted = _fit_fold(z_train, z_test, positions, yy[train], alphas)
        for s, (alpha, pred) in enumerate(fitted):
            chosen[s][f] = alpha
            predicted[s][test] = pred
    return [EncodingFit(predicted=pr, alphas=al) for pr, al in zip(predicted, chosen, strict=True)]
