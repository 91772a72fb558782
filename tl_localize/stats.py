"""Statistics from running moments: Welford/Chan accumulation, Welch's t, BH q, Cohen's d;
and the tests and intervals over items that verdicts rest on, with family-wise adjustment.

The localizer never holds activations: it keeps count, mean and sum of squared deviations
per unit and condition (float64), merged batch by batch with Chan et al.'s parallel update.
Welch's t from these moments equals ``scipy.stats.ttest_ind(a, b, equal_var=False)`` on the
raw values (checked in the tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from scipy import stats as sps
from torch import Tensor

from .options import ADJUSTMENTS

__all__ = [
    "ADJUSTMENTS",
    "Moments",
    "adjust_p",
    "benjamini_hochberg",
    "bootstrap_indices",
    "cohens_d",
    "mcnemar_p",
    "overlap_test",
    "paired_permutation_p",
    "percentile_interval",
    "permutation_max_t",
    "welch_t",
]


@dataclass
class Moments:
    """Running count, mean and M2 (sum of squared deviations) per unit."""

    n: int
    mean: Float[Tensor, " *units"]
    m2: Float[Tensor, " *units"]

    @classmethod
    def of(cls, values: Float[Tensor, " n *units"]) -> Moments:
        """Moments of stored observations (the first axis)."""
        moments = cls.zeros(tuple(values.shape[1:]))
        moments.update(values)
        return moments

    @classmethod
    def zeros(cls, shape: tuple[int, ...]) -> Moments:
        return cls(
            0, torch.zeros(shape, dtype=torch.float64), torch.zeros(shape, dtype=torch.float64)
        )

    def update(self, batch: Float[Tensor, " batch *units"]) -> None:
        """Merge a batch of observations (Chan et al. 1979)."""
        batch = batch.detach().to(torch.float64)
        n_b = batch.shape[0]
        if n_b == 0:
            return
        mean_b = batch.mean(0)
        m2_b = ((batch - mean_b) ** 2).sum(0)
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta**2 * (self.n * n_b / n)
        self.n = n

    @property
    def var(self) -> Float[Tensor, " *units"]:
        """Unbiased variance (ddof=1)."""
        return self.m2 / max(self.n - 1, 1)


def welch_t(
    a: Moments, b: Moments
) -> tuple[Float[Tensor, " *units"], Float[Tensor, " *units"], Float[Tensor, " *units"]]:
    """Welch's t, its degrees of freedom and the two-sided p-value, per unit (a vs b)."""
    va, vb = a.var / a.n, b.var / b.n
    se2 = va + vb
    t = (a.mean - b.mean) / se2.sqrt()
    df = se2**2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    p = 2 * sps.t.sf(np.abs(t.numpy()), df.numpy())
    return t, df, torch.from_numpy(np.asarray(p, dtype=np.float64))


def cohens_d(a: Moments, b: Moments) -> Float[Tensor, " *units"]:
    """Cohen's d with the pooled standard deviation."""
    pooled = ((a.n - 1) * a.var + (b.n - 1) * b.var) / (a.n + b.n - 2)
    return (a.mean - b.mean) / pooled.sqrt()


def benjamini_hochberg(p: Float[Tensor, " *units"]) -> Float[Tensor, " *units"]:
    """Benjamini-Hochberg q-values over all units together (NaN p-values stay NaN)."""
    flat = p.reshape(-1).numpy()
    q = np.full_like(flat, np.nan)
    ok = np.isfinite(flat)
    if ok.any():
        q[ok] = sps.false_discovery_control(flat[ok], method="bh")
    return torch.from_numpy(q).reshape(p.shape)


def overlap_test(total: int, n_a: int, n_b: int, shared: int) -> tuple[float, float]:
    """Two sets of ``n_a`` and ``n_b`` out of ``total`` share ``shared`` members: the count
    expected if one were drawn at random, and the hypergeometric P(``shared`` or more)."""
    return n_a * n_b / total, float(sps.hypergeom.sf(shared - 1, total, n_a, n_b))


def permutation_max_t(
    a: Float[Tensor, "n_a units"],
    b: Float[Tensor, "n_b units"],
    *,
    n_permutations: int,
    seed: int = 0,
    orders: Int[Tensor, "n_permutations n"] | None = None,
    chunk: int = 64,
) -> Float[Tensor, " n_permutations"]:
    """The largest Welch t over all units under each of ``n_permutations`` random
    relabellings of the observations (group sizes kept): the null distribution of the
    maximum, whose upper quantile is a family-wise threshold (Nichols & Holmes 2002).

    Each relabelling is a permutation of the pooled observations (``a`` then ``b``) whose
    first ``len(a)`` entries form the first group; they are drawn with ``seed``, or given as
    ``orders``. Vectorised: each chunk of permutations is one matrix product of label
    indicators with the (centred, float64) observations.
    """
    x = torch.cat([a, b]).to(torch.float64)
    x = x - x.mean(0)  # centring keeps the sums of squares accurate for loud units
    x2 = x * x
    n_a, n = a.shape[0], x.shape[0]
    n_b = n - n_a
    if orders is None:
        generator = torch.Generator().manual_seed(seed)
        orders = torch.rand(n_permutations, n, generator=generator).argsort(1)
    total, total2 = x.sum(0), x2.sum(0)
    out = torch.empty(len(orders), dtype=torch.float64)
    for start in range(0, len(orders), chunk):
        order = orders[start : start + chunk]
        labels = torch.zeros(len(order), n, dtype=torch.float64)
        labels.scatter_(1, order[:, :n_a], 1.0)
        sum_a, sum2_a = labels @ x, labels @ x2
        sum_b, sum2_b = total - sum_a, total2 - sum2_a
        mean_a, mean_b = sum_a / n_a, sum_b / n_b
        var_a = (sum2_a - n_a * mean_a**2) / (n_a - 1)
        var_b = (sum2_b - n_b * mean_b**2) / (n_b - 1)
        t = (mean_a - mean_b) / (var_a / n_a + var_b / n_b).sqrt()
        out[start : start + len(order)] = torch.nan_to_num(t, nan=-torch.inf).amax(1)
    return out


def mcnemar_p(a: np.ndarray, b: np.ndarray) -> float:
    """Exact McNemar test of paired booleans (two-sided binomial on discordant items)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    return float(sps.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def bootstrap_indices(n_items: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """``[n_boot, n_items]`` item indices drawn with replacement (seeded); reuse one matrix
    for every quantity that should be resampled together (a paired bootstrap)."""
    return np.random.default_rng(seed).integers(0, n_items, size=(n_boot, n_items))


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap samples (NaNs ignored)."""
    tail = 100 * (1 - level) / 2
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return math.nan, math.nan
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def paired_permutation_p(
    differences: np.ndarray,
    *,
    alternative: str = "less",
    n_permutations: int = 10_000,
    seed: int = 0,
) -> float:
    """Paired permutation test of the mean of ``differences`` (x - y per item): under the
    null each pair's two values are exchangeable, so each difference's sign is flipped at
    random. ``alternative`` is ``"less"`` (x smaller than y), ``"greater"`` or
    ``"two-sided"``. Exact (every sign pattern) when there are at most ``n_permutations``
    patterns, else randomized with the +1 correction; the same p as
    ``scipy.stats.permutation_test(..., permutation_type="samples")`` on the paired values.
    """
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or d.size == 0 or not np.isfinite(d).all():
        raise ValueError("differences must be a non-empty 1-d array of finite numbers")
    observed = d.mean()
    n = d.size
    if 2**n <= n_permutations:
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
        adjustment = 0
    else:
        rng = np.random.default_rng(seed)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(n_permutations, n))
        adjustment = 1
    null = (signs * d).mean(1)
    gamma = abs(observed) * np.finfo(float).eps * 100  # scipy's tolerance for float ties
    less = (np.sum(null <= observed + gamma) + adjustment) / (len(null) + adjustment)
    greater = (np.sum(null >= observed - gamma) + adjustment) / (len(null) + adjustment)
    if alternative == "less":
        return float(less)
    if alternative == "greater":
        return float(greater)
    if alternative == "two-sided":
        return float(min(1.0, 2 * min(less, greater)))
    raise ValueError(f"alternative must be 'less', 'greater' or 'two-sided', not {alternative!r}")


def adjust_p(p: np.ndarray | list[float], method: str = "holm") -> np.ndarray:
    """``p`` adjusted as one family of comparisons by ``method`` (:data:`ADJUSTMENTS`):
    Holm's step-down method, which controls the family-wise error rate under any dependence
    between the tests, or Benjamini-Hochberg, which controls the false discovery rate;
    computed by ``statsmodels.stats.multitest.multipletests``. NaN p-values are not
    comparisons: they stay NaN and do not count in the family.

    >>> adjust_p([0.01, 0.04, 0.03], "holm").round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    if method not in ADJUSTMENTS:
        raise ValueError(f"method must be one of {list(ADJUSTMENTS)}, not {method!r}")
    values = np.asarray(p, dtype=float)
    out = np.full(values.shape, np.nan)
    ok = np.isfinite(values)
    if method == "none" or not ok.any():
        out[ok] = values[ok]
        return out
    from statsmodels.stats.multitest import multipletests

    out[ok] = multipletests(values[ok], method=method)[1]
    return out
