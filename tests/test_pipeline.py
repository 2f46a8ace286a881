"""The pipeline: ``Fit.save`` only serialises; the analyses after a fit are :class:`dvbstats.Analysis` steps
(checked before sampling, run on the fit, written by ``Fit.save(analyses=...)``)."""

import json
import subprocess
import sys

import polars as pl
import pytest

import dvbstats as dvb
from dvbstats.results import agreement, scaling
from dvbstats.simulate import dvb as simulate


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Three models with trials, two of one family in two sizes: a save on main ran the scaling tests and the
    agreement models on it."""
    design = simulate.StudyDesign(feature_dims=[("Formal", "Colloquial")], n_prompts=200)
    effects = simulate.draw_effects(design, ["gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "llama-3-8b"],
                                    intercept=-0.6, log_n_train=0.0,
                                    sd={"model": 0.5, "value": 0.3, "feature": 0.2, "context": 0.2}, seed=2)
    sim = simulate.simulate(effects, design, seed=3, out_dir=tmp_path_factory.mktemp("dumps"))
    model = dvb.Model("chose_deep ~ 1 + (1|model) + (1|value)", dvb.load([str(p) for p in sim.paths]))
    return model, model.fit(draws=100, tune=100, chains=2, seed=4, progress=False)


def _refuse(*_args, **_kwargs):
    raise AssertionError("inference ran while saving")


def test_save_runs_no_inference(fitted, tmp_path, monkeypatch):
    _, fit = fitted
    assert fit.model_table.families_with_sizes()  # the old save would have run the scaling tests here
    monkeypatch.setattr(scaling, "scaling_tests", _refuse)
    monkeypatch.setattr(agreement, "agreement_analysis", _refuse)
    out = fit.save(tmp_path / "run")
    meta = json.loads((out / "manifest.json").read_text())
    assert meta["scaling"].startswith("not run (Fit.save was given no analyses")
    assert meta["agreement"].startswith("not run (Fit.save was given no analyses")
    assert not (out / "scaling_pairs.csv").exists() and not (out / "agreement.csv").exists()
    assert (out / "rates.csv").exists() and (out / "posterior.nc").exists() and (out / "cells.parquet").exists()


def test_analysis_steps_are_written_by_save(fitted, tmp_path):
    model, fit = fitted
    analysis = dvb.Analysis(scaling=False, agreement=False, contrasts=["all"], rope=0.05, prior_predictive=True)
    analysis.check(model)
    found = analysis.run(fit)
    assert set(found.results) == {"contrasts", "prior_predictive"}
    assert found.notes["scaling"] == "not run (--no-scaling)" and found.notes["agreement"] == "not run (switched off)"
    out = fit.save(tmp_path / "run", analyses=found)
    contrasts = pl.read_csv(out / "contrasts.csv")
    assert contrasts.height == 3 and "p_in_rope" in contrasts.columns  # 3 models: 3 pairs
    assert pl.read_csv(out / "prior_predictive.csv").filter(pl.col("by") == "model").height == 3
    assert not (out / "contrasts_methods.json").exists()  # tables only: no methods record
    assert json.loads((out / "manifest.json").read_text())["scaling"] == "not run (--no-scaling)"


def test_analysis_options_are_checked_before_sampling(fitted):
    model, _ = fitted
    with pytest.raises(ValueError, match="no-such-model"):
        dvb.Analysis(contrasts=["no-such-model-gpt-4o"]).check(model)
    with pytest.raises(ValueError):
        dvb.Analysis(pairs=[("gpt-4o", "no-such-model")]).check(model)


def test_import_leaves_the_warning_filters_as_they_were():
    code = "import warnings; before = list(warnings.filters); import dvbstats; print(warnings.filters == before)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
