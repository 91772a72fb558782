"""Statistics from running moments: Welford/Chan accumulation, Welch's t, BH q, Cohen's d.

The localizer never holds activations: it keeps count, mean and sum of squared deviations
per unit and condition (float64), merged batch by batch with Chan et al.'s parallel update.
Welch's t from these moments equals ``scipy.stats.ttest_ind(a, b, equal_var=False)`` on the
raw values (checked in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from scipy import stats as sps
from torch import Tensor

__all__ = ["Moments", "benjamini_hochberg", "cohens_d", "overlap_test", "welch_t"]


@dataclass
class Moments:
    """Running count, mean and M2 (sum of squared deviations) per unit."""

    n: int
    mean: Float[Tensor, " *units"]
    m2: Float[Tensor, " *units"]

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
