"""Monte Carlo standard errors and borderline verdicts (``dvbstats.results.mcse``) on constructed posteriors.

Independent normal draws have known MCSEs: sd / sqrt(n) for the mean, sqrt(p (1 - p) / n) for a
probability and sd sqrt(q (1 - q) / n) / phi(z_q) for the q-quantile; ArviZ's estimates and the
table approximations must agree with them.
"""

from __future__ import annotations

import math

import arviz as az
import arviz.utils
import numpy as np
import pytest
from scipy import stats

from dvbstats.model.sample import arviz_without_numba
from dvbstats.results import mcse

N_CHAINS, N_DRAWS = 4, 5000


@pytest.fixture(scope="module")
def normal_draws() -> np.ndarray:
    return np.random.default_rng(7).normal(0.0, 1.0, size=(N_CHAINS, N_DRAWS))


def test_mean_and_probability_mcse_of_independent_draws(normal_draws):
    n = normal_draws.size
    assert mcse.mean_mcse(normal_draws) == pytest.approx(1 / math.sqrt(n), rel=0.1)
    p = float((normal_draws < 0.5).mean())
    assert mcse.probability_mcse(normal_draws < 0.5) == pytest.approx(math.sqrt(p * (1 - p) / n), rel=0.1)
    assert mcse.probability_mcse(normal_draws < 100) == 0.0


def test_quantile_mcse_matches_the_formula(normal_draws):
    n, q = normal_draws.size, 0.03
    bound = float(np.quantile(normal_draws, q))
    known = math.sqrt(q * (1 - q) / n) / stats.norm.pdf(stats.norm.ppf(q))
    assert mcse.quantile_mcse(normal_draws, bound) == pytest.approx(known, rel=0.25)
    z = stats.norm.ppf(0.97)
    assert mcse.approx_mean_mcse(-z, z, 0.94, n) == pytest.approx(1 / math.sqrt(n), rel=1e-9)


def test_hdi_mcse_matches_the_spread_of_the_hdi_over_reruns():
    """The SD of the 94% HDI bounds over 200 reruns of 4 x 1000 independent normal draws is the truth the
    MCSE from draws and the table approximation must find (within their own noise): about twice the
    quantile MCSE."""
    rng = np.random.default_rng(11)
    reruns = np.array([az.hdi(rng.normal(size=4000), hdi_prob=0.94) for _ in range(200)])
    truth = reruns.std(axis=0, ddof=1).mean()
    z = stats.norm.ppf(0.97)
    quantile = math.sqrt(0.03 * 0.97 / 4000) / stats.norm.pdf(z)
    assert truth > 1.4 * quantile
    estimates = np.array([mcse.hdi_mcse(rng.normal(size=(4, 1000)), 0.94) for _ in range(5)])
    assert estimates.mean() == pytest.approx(truth, rel=0.3)
    assert mcse.approx_bound_mcse(-z, z, 0.94, 4000) == pytest.approx(truth, rel=0.3)


def test_autocorrelated_draws_have_larger_mcse(normal_draws):
    """An AR(1) chain with rho = 0.9 has about (1 + rho) / (1 - rho) = 19 times fewer effective draws."""
    rng = np.random.default_rng(3)
    ar = np.zeros((N_CHAINS, N_DRAWS))
    for t in range(1, N_DRAWS):
        ar[:, t] = 0.9 * ar[:, t - 1] + rng.normal(0, math.sqrt(1 - 0.81), N_CHAINS)
    ratio = mcse.mean_mcse(ar) / mcse.mean_mcse(normal_draws)
    assert 3.0 < ratio < 6.0  # sqrt(19) = 4.4


def _rule(x: float, y: np.ndarray) -> str:
    return "above" if x > 0 and np.all(y > 0.95) else "not above"


def test_fragile_names_only_the_numbers_near_their_threshold():
    numbers = {"x": 0.01, "y": np.array([0.99, 0.955, 0.999])}
    assert mcse.fragile(_rule, numbers, {"x": 0.001, "y": np.array([0.001, 0.001, 0.001])}) == []
    found = mcse.fragile(_rule, numbers, {"x": 0.006, "y": np.array([0.01, 0.003, 0.0])},
                         labels={"y": ["a", "b", "c"]}, thresholds={"x": 0.0})
    assert [f.quantity for f in found] == ["x", "b"]
    assert found[0].threshold == 0.0 and found[0].mcse == 0.006
    note = mcse.borderline_note(found)
    assert note.startswith("borderline: within 2 MCSE") and "x 0.01, MCSE 0.006 (threshold 0)" in note
    assert mcse.borderline_note([]) is None
    # missing or None MCSEs count as exact
    assert mcse.fragile(_rule, numbers, {"x": None}) == []


def test_mcses_use_arviz_numpy_arithmetic_not_its_uncached_numba_kernel(normal_draws, monkeypatch):
    """ArviZ's Numba variance kernel is compiled on every run (0.7 CPU s of the HVSB example's scaling tests):
    the MCSEs use its NumPy arithmetic, and ArviZ's switch is back as it was afterwards."""
    monkeypatch.setattr(az.Numba, "numba_flag", True)
    monkeypatch.setattr(arviz.utils.maybe_numba_fn, "numba_fn",
                        property(lambda self: pytest.fail("ArviZ's Numba kernel was compiled")))
    assert mcse.mean_mcse(normal_draws) > 0 and mcse.probability_mcse(normal_draws < 0.5) > 0
    assert mcse.quantile_mcse(normal_draws, 1.0) > 0 and min(mcse.hdi_mcse(normal_draws, 0.9)) > 0
    assert az.Numba.numba_flag


def test_arviz_switch_is_restored_by_the_last_block_out_in_any_order(monkeypatch):
    """Blocks beside each other in threads (the agreement's diagnostics beside the scaling tests' MCSEs) end in
    any order: ArviZ keeps its NumPy arithmetic until the last one ends, then gets its own switch back."""
    monkeypatch.setattr(az.Numba, "numba_flag", True)
    first, second = arviz_without_numba(), arviz_without_numba()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # not the last: the other block still runs
    assert az.Numba.numba_flag is False
    second.__exit__(None, None, None)
    assert az.Numba.numba_flag is True
