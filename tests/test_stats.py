import numpy as np
import pytest
import torch
from scipy import stats as sps

from tl_localize.stats import Moments, benjamini_hochberg, cohens_d, welch_t


def _moments(x: np.ndarray, chunks: int) -> Moments:
    m = Moments.zeros(x.shape[1:])
    for part in np.array_split(x, chunks):
        m.update(torch.from_numpy(part))
    return m


@pytest.mark.parametrize("chunks", [1, 3, 7])
def test_running_moments_match_numpy(chunks):
    rng = np.random.default_rng(0)
    x = rng.normal(5, 3, size=(50, 4, 6))
    m = _moments(x, chunks)
    assert m.n == 50
    np.testing.assert_allclose(m.mean.numpy(), x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(m.var.numpy(), x.var(0, ddof=1), rtol=1e-10)


def test_welch_t_matches_scipy():
    rng = np.random.default_rng(1)
    a = rng.normal(1.0, 2.0, size=(40, 3, 5))
    b = rng.normal(0.5, 1.0, size=(25, 3, 5))
    t, _, p = welch_t(_moments(a, 4), _moments(b, 2))
    ref = sps.ttest_ind(a, b, axis=0, equal_var=False)
    np.testing.assert_allclose(t.numpy(), ref.statistic, rtol=1e-9)
    np.testing.assert_allclose(p.numpy(), ref.pvalue, rtol=1e-7)


def test_cohens_d_and_bh():
    rng = np.random.default_rng(2)
    a = rng.normal(1.0, 1.0, size=(30, 8))
    b = rng.normal(0.0, 1.0, size=(30, 8))
    d = cohens_d(_moments(a, 1), _moments(b, 1)).numpy()
    pooled = np.sqrt((a.var(0, ddof=1) + b.var(0, ddof=1)) / 2)
    np.testing.assert_allclose(d, (a.mean(0) - b.mean(0)) / pooled, rtol=1e-10)
    p = torch.tensor([[0.01, 0.04], [0.03, float("nan")]], dtype=torch.float64)
    q = benjamini_hochberg(p)
    expected = sps.false_discovery_control([0.01, 0.04, 0.03], method="bh")
    np.testing.assert_allclose(q.reshape(-1)[:3].numpy(), expected)
    assert torch.isnan(q[1, 1])
