"""What the sampler says while it runs: nutpie's bar on a terminal, progress lines elsewhere, no BLAS noise."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import arviz as az
import numpy as np
import pymc as pm
import pytest

from dvbstats import sample as samplemod
from dvbstats.sample import SamplerSettings


class _FakeSampler:
    """nutpie's background sampler: ``wait(timeout)`` times out ``n_timeouts`` times, then returns the trace."""

    def __init__(self, idata, n_timeouts):
        self.idata, self.n_timeouts, self.waits = idata, n_timeouts, []

    def wait(self, *, timeout=None):
        self.waits.append(timeout)
        if timeout is not None and len(self.waits) <= self.n_timeouts:
            raise TimeoutError("Timeout while waiting for sampler to finish")
        return self.idata

    def inspect(self):
        return self.idata


def _trace(warmup, chains=2, draws=5, tune=3, divergent=1):
    """A trace as nutpie returns it (warm-up groups when asked to save them); one divergence after tuning."""
    diverging = np.zeros((chains, draws), dtype=bool)
    diverging.flat[:divergent] = True
    groups = {"posterior": {"x": np.zeros((chains, draws))}, "sample_stats": {"diverging": diverging}}
    if warmup:
        groups |= {"warmup_posterior": {"x": np.zeros((chains, tune))},
                   "warmup_sample_stats": {"diverging": np.ones((chains, tune), dtype=bool)}}
    return az.InferenceData(**{g: az.dict_to_dataset(v) for g, v in groups.items()})


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_bar_on_a_terminal_lines_elsewhere(monkeypatch, capsys, terminal):
    import nutpie

    calls = {}
    fake = _FakeSampler(_trace(warmup=not terminal), n_timeouts=2)
    monkeypatch.setattr(nutpie, "compile_pymc_model", lambda model: "compiled")
    monkeypatch.setattr(nutpie, "sample", lambda compiled, **kw: calls.update(kw) or fake)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    idata = samplemod.sample(pm.Model(), SamplerSettings(draws=5, tune=3, chains=2))
    out = capsys.readouterr().out
    assert calls["progress_bar"] is terminal and calls["save_warmup"] is not terminal
    assert "warmup_posterior" not in idata.groups() and idata.posterior.sizes["draw"] == 5
    if terminal:
        assert out == "" and fake.waits == [None]
    else:
        lines = [line for line in out.splitlines() if "sampling:" in line]
        assert len(lines) == 3  # two while waiting, one at the end
        assert "16/16 draws" in lines[-1] and "1 divergences after tuning" in lines[-1]
        assert "compiling the model: done" in out


@pytest.mark.slow
def test_a_real_fit_without_terminal_talks_and_hides_the_blas_warning(tmp_path):
    """In a fresh process (PyTensor warns once per process), with every warning shown, stdout a pipe."""
    script = textwrap.dedent("""
        import warnings
        warnings.simplefilter("always")
        import numpy as np, pymc as pm
        from dvbstats import sample
        sample.PROGRESS_INTERVAL_S = 0.2
        with pm.Model() as model:
            mu = pm.Normal("mu", 0, 1)
            pm.Binomial("k", n=np.full(20, 50), logit_p=mu, observed=np.arange(20) + 10)
        idata = sample.sample(model, sample.SamplerSettings(draws=300, tune=300, chains=2, target_accept=0.8))
        print("draws", idata.posterior.sizes["draw"])
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}  # this checkout's dvbstats
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    assert "compiling the model: done" in res.stdout and "sampling: 1,200/1,200 draws" in res.stdout
    assert "draws 300" in res.stdout
    assert "BLAS" not in res.stdout + res.stderr
