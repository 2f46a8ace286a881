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

from dvbstats.model import pymcmodel
from dvbstats.model import sample as samplemod
from dvbstats.model.sample import SamplerSettings


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
    groups = {"posterior": {"x": np.zeros((chains, draws))},
              "sample_stats": {"diverging": diverging, "step_size": np.full((chains, draws), 0.3)}}
    if warmup:
        groups |= {"warmup_posterior": {"x": np.zeros((chains, tune))},
                   "warmup_sample_stats": {"diverging": np.ones((chains, tune), dtype=bool),
                                           "step_size": np.full((chains, tune), 0.3)}}
    return az.InferenceData(**{g: az.dict_to_dataset(v) for g, v in groups.items()})


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_bar_on_a_terminal_lines_elsewhere(monkeypatch, capsys, terminal):
    import nutpie

    calls = {}
    fake = _FakeSampler(_trace(warmup=not terminal), n_timeouts=2)
    monkeypatch.setattr(nutpie, "compile_pymc_model", lambda model: "compiled")
    monkeypatch.setattr(nutpie, "sample", lambda compiled, **kw: calls.update(kw) or fake)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    idata = pymcmodel.sample(pm.Model(), SamplerSettings(draws=5, tune=3, chains=2))
    out = capsys.readouterr().out
    assert calls["progress_bar"] is terminal and calls["save_warmup"] is not terminal
    assert "warmup_posterior" not in idata.groups() and idata.posterior.sizes["draw"] == 5
    if terminal:
        assert out == "" and fake.waits == [None]
    else:
        lines = [line for line in out.splitlines() if "sampling:" in line]
        assert len(lines) == 1  # the count once, at the end; while waiting with every draw in, what is being done
        assert out.count("sampling done; collecting the 16 draws") == 2
        assert "16/16 draws" in lines[-1] and "1 divergences after tuning" in lines[-1]
        assert "compiling the model: done" in out


@pytest.mark.slow
def test_a_real_fit_without_terminal_talks_and_hides_the_blas_warning(tmp_path):
    """In a fresh process (PyTensor warns once per process), with every warning shown, stdout a pipe."""
    script = textwrap.dedent("""
        import warnings
        warnings.simplefilter("always")
        import numpy as np, pymc as pm
        from dvbstats.model import pymcmodel, sample
        sample.PROGRESS_INTERVAL_S = 0.2
        with pm.Model() as model:
            mu = pm.Normal("mu", 0, 1)
            pm.Binomial("k", n=np.full(20, 50), logit_p=mu, observed=np.arange(20) + 10)
        idata = pymcmodel.sample(model, sample.SamplerSettings(draws=300, tune=300, chains=2, target_accept=0.8))
        print("draws", idata.posterior.sizes["draw"])
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}  # this checkout's dvbstats
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    assert "compiling the model: done" in res.stdout and "sampling: 1,200/1,200 draws" in res.stdout
    assert "draws 300" in res.stdout
    assert "BLAS" not in res.stdout + res.stderr


def test_settings_default_to_the_package_constants_and_round_trip():
    from dvbstats import constants

    s = SamplerSettings()
    assert (s.sampler, s.draws, s.tune, s.chains, s.seed, s.target_accept) == (
        "nutpie", constants.DRAWS, constants.TUNE, constants.CHAINS, constants.SEED, None)
    assert SamplerSettings(**SamplerSettings(draws=7, tune=3, chains=1, seed=5).as_dict()) == SamplerSettings(
        draws=7, tune=3, chains=1, seed=5)  # the manifest's record rebuilds the settings (Fit.load)
    with pytest.raises(ValueError, match="sampler must be 'nutpie' or 'pymc'"):
        pymcmodel.sample(pm.Model(), SamplerSettings(sampler="stan"))


@pytest.mark.parametrize(("chains", "draws", "nan", "interrupted"), [
    (2, 5, False, False),  # every draw made
    (1, 5, False, True),  # a chain missing (PyMC stopped before starting it)
    (2, 4, False, True),  # a short trace (PyMC returns the draws so far)
    (2, 5, True, True),  # NaN-padded (nutpie's abort)
])
def test_complete_detects_an_interrupted_trace(chains, draws, nan, interrupted):
    x = np.zeros((chains, draws))
    if nan:
        x[1, 3:] = np.nan
    idata = az.InferenceData(posterior=az.dict_to_dataset({"x": x, "k": np.zeros((chains, draws), dtype=int)}))
    settings = SamplerSettings(draws=5, chains=2)
    if interrupted:
        with pytest.raises(samplemod.SamplingInterrupted):
            samplemod.complete(idata, settings)
    else:
        assert samplemod.complete(idata, settings) is idata


def test_diagnose_labels_every_scalar_and_fails_a_bad_trace():
    rng = np.random.default_rng(0)
    good = rng.normal(size=(4, 500, 2))
    stuck = np.repeat(rng.normal(size=(4, 1, 1)) * 5, 500, axis=1) + rng.normal(0, 0.01, (4, 500, 1))
    posterior = az.dict_to_dataset({"a": good, "b": stuck}, dims={"a": ["level"], "b": ["one"]},
                                   coords={"level": ["x", "y"], "one": ["z"]})
    idata = az.InferenceData(posterior=posterior,
                             sample_stats=az.dict_to_dataset({"diverging": np.zeros((4, 500), bool)}))
    d = samplemod.diagnose({"a": posterior["a"]}, idata)
    assert d.table["parameter"].to_list() == ["a[x]", "a[y]"] and d.ok and d.n_draws == 2000
    bad = samplemod.diagnose({"a": posterior["a"], "b": posterior["b"]}, idata)
    assert not bad.ok and len(bad.failures) == 2  # R-hat and ESS of b[z]; no divergences
    assert "worst b[z]" in bad.failures[0] and "worst b[z]" in bad.failures[1]


def test_diagnose_compiles_nothing():
    """ArviZ's Numba variance kernel is not cached on disk: diagnose uses its NumPy arithmetic, so a warm
    run compiles nothing (checked in a fresh process, where nothing is compiled yet), and leaves
    ArviZ's own setting as it found it."""
    script = textwrap.dedent("""
        import arviz as az, numpy as np
        import numba.core.event as ev
        from dvbstats.model import sample
        x = np.random.default_rng(0).normal(size=(4, 200))
        idata = az.InferenceData(posterior=az.dict_to_dataset({"a": x}),
                                 sample_stats=az.dict_to_dataset({"diverging": np.zeros((4, 200), bool)}))
        with ev.install_recorder("numba:compile") as rec:
            d = sample.diagnose({"a": idata.posterior["a"]}, idata)
        print(len(rec.buffer), az.Numba.numba_flag, d.ok)
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["0", "True", "True"]
