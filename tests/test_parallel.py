"""Work split across threads gives the numbers of the serial computation, and nutpie's worker threads
keep their Python thread state between calls of the log density (dvbstats.model.threadstate)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dvbstats.model import fastlogp, threadstate
from dvbstats.results import estimands
from tests.test_estimands import _fit, _posterior


@pytest.mark.parametrize("n, cores", [(1, 2), (7, 2), (100, 3), (5, 8), (4000, 1)])
def test_draw_slices_cover_every_draw_once_in_order(n, cores, monkeypatch):
    monkeypatch.setattr(estimands.os, "cpu_count", lambda: cores)
    slices = estimands.draw_slices(n)
    assert len(slices) == min(cores, n)
    assert np.array_equal(np.concatenate([np.arange(n)[s] for s in slices]), np.arange(n))
    assert all(s.stop > s.start for s in slices)


def test_design_averages_in_threads_equal_the_serial_sums_bit_for_bit(monkeypatch):
    fit = _fit(_posterior(seed=3))
    groupings = [("model",), (), ("value",), ("model", "value")]
    monkeypatch.setattr(estimands, "draw_slices", lambda n: [slice(0, n)])
    serial = estimands.design_averages(fit.design, fit.idata, groupings)
    monkeypatch.undo()
    monkeypatch.setattr(estimands.os, "cpu_count", lambda: 3)  # 100 draws in three uneven slices
    threaded = estimands.design_averages(fit.design, fit.idata, groupings)
    for (a, keys_a), (b, keys_b) in zip(serial, threaded, strict=True):
        assert keys_a.equals(keys_b) and np.array_equal(a.values, b.values)


def test_design_averages_in_blocks_of_draws_equal_one_block_bit_for_bit(monkeypatch):
    """The float64 parameters are built one block of draws at a time (memory): the sums do not change."""
    fit = _fit(_posterior(seed=4))
    groupings = [("model",), ()]
    whole = estimands.design_averages(fit.design, fit.idata, groupings)
    monkeypatch.setattr(estimands, "DRAW_BLOCK", 7)  # 100 draws: blocks of 7 within each thread's slice
    blocks = estimands.design_averages(fit.design, fit.idata, groupings)
    for (a, _), (b, _) in zip(whole, blocks, strict=True):
        assert np.array_equal(a.values, b.values)


class _Normal:
    """A standard normal in two dimensions that counts, per thread, the calls its thread state saw."""

    ndim = 2

    def __init__(self):
        self.local, self.seen = threading.local(), []

    def logp_and_grad(self, x):
        self.local.calls = getattr(self.local, "calls", 0) + 1
        self.seen.append(self.local.calls)
        return -0.5 * float(x @ x), -x

    def expand(self, x):
        return {"x": np.array(x, dtype=np.float64)}

    def variables(self):
        return ["x"], [(2,)], {}


def _sample(compiled):
    import nutpie

    return nutpie.sample(compiled, draws=30, tune=30, chains=2, seed=1, progress_bar=False)


def test_nutpie_worker_threads_keep_their_python_state_between_calls():
    density = _Normal()
    _sample(fastlogp.pyfunc_model(density, {}))
    assert max(density.seen) > 100  # one thread state per worker, seeing every call of that worker


def test_without_it_every_call_from_a_worker_thread_gets_a_new_state(monkeypatch):
    monkeypatch.setattr(threadstate, "kept", lambda function: function)  # the premise: the same sampler, unwrapped
    density = _Normal()
    _sample(fastlogp.pyfunc_model(density, {}))
    assert max(density.seen) == 1


def test_kept_returns_what_the_function_returns():
    assert threadstate.kept(lambda a, b=1: a + b)(2, b=3) == 5
