"""``fit.idata`` as ArviZ reads it: the cells as ``observed_data``/``constant_data``, the pointwise
log-likelihood on request (``az.loo``), posterior predictive draws on request (``az.plot_ppc``)."""

from __future__ import annotations

import io
import threading
from types import SimpleNamespace

import arviz as az
import h5py
import matplotlib
import numpy as np
import pandas as pd
import polars as pl
import pytest
import xarray as xr
from scipy.special import expit
from scipy.stats import binom

import dvbstats as dvb
from dvbstats.input import runfolder
from dvbstats.results import predictive, tables
from dvbstats.simulate import dvb as simulate

matplotlib.use("Agg")

FAST = dict(draws=150, tune=150, chains=2, progress=False)
FORMULA = "chose_deep ~ 1 + (1|model) + (1|value)"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    design = simulate.StudyDesign(feature_dims=[("Formal", "Colloquial")], n_prompts=200)
    effects = simulate.draw_effects(design, ["gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "llama-3-8b"],
                                    intercept=-0.4, log_n_train=0.0, sd={"model": 0.5, "value": 0.3, "feature": 0.0, "context": 0.0}, seed=5)
    return dvb.load([str(p) for p in simulate.simulate(effects, design, seed=6,
                                                      out_dir=tmp_path_factory.mktemp("dumps")).paths])


@pytest.fixture(scope="module")
def fits(data):
    model = dvb.Model(FORMULA, data)
    return model.fit(seed=1, **FAST), model.fit(seed=2, **FAST)


def test_idata_holds_the_cells_as_observed_and_constant_data(fits):
    fit, _ = fits
    cells = fit.cells.data.filter(fit.cells.data["n_trials"] > 0)
    observed, constant = fit.idata.observed_data["n_deep"], fit.idata.constant_data["n_trials"]
    np.testing.assert_array_equal(observed.values, cells["n_deep"].to_numpy())
    np.testing.assert_array_equal(constant.values, cells["n_trials"].to_numpy())
    assert list(observed.coords["model"].values) == cells["model"].to_list()
    assert list(observed.coords["value"].values) == cells["value"].to_list()
    assert "log_likelihood" not in fit.idata.groups()  # only on request


def test_az_loo_on_the_fit_equals_the_package_comparison(fits):
    """``az.loo(fit.idata)`` after :meth:`Fit.compute_log_likelihood` gives the ELPD of :func:`dvb.compare`, and
    the pointwise terms are the binomial log-probabilities of the cells at each draw's rate, computed here
    from the posterior's named parameters."""
    fit, other = fits
    loo = az.loo(fit.compute_log_likelihood(), pointwise=True)
    table = dvb.compare({"a": fit, "b": other})
    assert loo.elpd_loo == pytest.approx(table.loc["a", "elpd_loo"], rel=1e-10)
    assert loo.p_loo == pytest.approx(table.loc["a", "p_loo"], rel=1e-10)
    post, ll = fit.idata.posterior, fit.idata.log_likelihood["n_deep"]
    chain, draw = 1, 17
    eta = (post["Intercept"][chain, draw].item()
           + post["r_model"][chain, draw].sel(model=ll.coords["model"].values).values
           + post["r_value"][chain, draw].sel(value=ll.coords["value"].values).values)
    n, k = fit.idata.constant_data["n_trials"].values, fit.idata.observed_data["n_deep"].values
    np.testing.assert_allclose(ll[chain, draw].values, binom.logpmf(k, n, expit(eta)), rtol=1e-9)


def test_posterior_predictive_on_request_feeds_az_plot_ppc(fits, tmp_path):
    fit, _ = fits
    idata = fit.sample_posterior_predictive(seed=3)
    replicated = idata.posterior_predictive["n_deep"]
    assert replicated.dims == ("chain", "draw", "cell") and replicated.shape[:2] == (2, 150)
    n = idata.constant_data["n_trials"].values
    assert (replicated.values >= 0).all() and (replicated.values <= n).all()
    # the observed total lies inside the replicated totals (a fitted model reproduces its own data)
    totals = replicated.sum("cell").values.ravel()
    assert np.quantile(totals, 0.005) <= idata.observed_data["n_deep"].sum() <= np.quantile(totals, 0.995)
    again = fit.sample_posterior_predictive(seed=3).posterior_predictive["n_deep"]
    np.testing.assert_array_equal(again.values, replicated.values)  # seeded
    axes = az.plot_ppc(idata, num_pp_samples=20, random_seed=1)
    assert np.asarray(axes).size >= 1
    matplotlib.pyplot.close("all")


def test_the_groups_survive_save_and_load(fits, tmp_path):
    fit, _ = fits
    back = dvb.Fit.load(fit.save(tmp_path / "run"))
    assert back.idata.observed_data["n_deep"].dims == ("cell",)
    np.testing.assert_array_equal(back.idata.observed_data["n_deep"].values, fit.idata.observed_data["n_deep"].values)
    loo = az.loo(back.compute_log_likelihood())
    assert np.isfinite(loo.elpd_loo)


def test_the_posterior_file_stores_the_cells_coordinates_once_and_reads_back_whole(fits, tmp_path):
    """``posterior.nc`` holds the cells' design columns once (``observed_data``; ``constant_data`` keeps the ``cell``
    index) and no zlib filter (random floats: 7% smaller for 1 CPU s on HVSB); ``Fit.load`` gives every group back
    as it was, ArviZ reads the file as it is, and ``n_trials`` lines up with ``n_deep`` on ``cell``."""
    fit, _ = fits
    run = fit.save(tmp_path / "run")
    with h5py.File(run / "posterior.nc") as f:
        assert {"model", "value", "n_deep"} <= set(f["observed_data"]) and set(f["constant_data"]) == {"cell", "n_trials"}
        filters = {name: f[group][name].compression for group in f for name in f[group]
                   if isinstance(f[group][name], h5py.Dataset)}
        assert set(filters.values()) == {None}
    back = dvb.Fit.load(run)
    for group in fit.idata.groups():
        assert back.idata[group].identical(fit.idata[group]), group
    plain = az.from_netcdf(run / "posterior.nc")
    aligned = xr.merge([plain.observed_data, plain.constant_data])  # on the cell index
    np.testing.assert_array_equal(aligned["n_trials"].values, fit.idata.constant_data["n_trials"].values)
    assert list(aligned["model"].values) == list(fit.idata.constant_data["model"].values)


def test_the_posterior_predictive_check_runs_beside_the_run_folders_writing(fits, tmp_path, monkeypatch):
    """The posterior predictive check (Numba without the GIL, 1.5 CPU s on the HVSB example) starts first and runs
    in a thread while the folder's other tables and files are made: here it is still running when the posterior
    file is written, and its table is the one computed on its own."""
    fit, _ = fits
    posterior_written, seen = threading.Event(), {}
    check, write_posterior = tables.ppc_table, runfolder.write_posterior

    def slow_check(*args):
        seen["thread"] = threading.current_thread() is not threading.main_thread()
        seen["beside"] = posterior_written.wait(timeout=5)
        return check(*args)

    def writing(*args):
        posterior_written.set()
        write_posterior(*args)

    monkeypatch.setattr(tables, "ppc_table", slow_check)
    monkeypatch.setattr(runfolder, "write_posterior", writing)
    run = fit.save(tmp_path / "run")
    assert seen == {"thread": True, "beside": True}
    expected = check(fit, 0.94, fit.settings.seed)
    assert pl.read_csv(run / "ppc.csv").equals(pl.read_csv(io.StringIO(expected.write_csv())))


def test_fit_methods_return_pandas_tables(fits):
    fit, _ = fits
    models = fit.models
    for table in (fit.summary(), fit.rates("model"), fit.contrast(models[0], models[1], rope=0.02)):
        assert isinstance(table, pd.DataFrame)
    assert {"diff_mean", "p_in_rope"} <= set(fit.contrast(models[0], models[1], rope=0.02).columns)


def test_cell_coordinates_are_fixed_width_text_of_the_observed_cells():
    """Text levels become a fixed-width string array (not one Python object per cell: 3.2 GB at 10 M cells),
    missing levels empty text, numbers stay numbers; cells without a trial are left out."""
    data = pl.DataFrame({"model": ["a", "béta", None, "a"], "size": [1.5, 2.0, 3.0, 4.0],
                         "n_deep": [1, 0, 2, 0], "n_trials": [2, 0, 3, 1]})
    d = SimpleNamespace(cells=SimpleNamespace(data=data, by=("model", "size")), observed=data["n_trials"].to_numpy() > 0)
    coords = predictive.cell_coords(d)
    np.testing.assert_array_equal(coords["cell"], [0, 2, 3])
    assert coords["model"][1].dtype.kind == "U" and coords["model"][1].tolist() == ["a", "", "a"]
    np.testing.assert_array_equal(coords["size"][1], [1.5, 3.0, 4.0])
    observed, constant = predictive.observed_data(d)
    assert observed["n_deep"].values.tolist() == [1, 2, 0] and constant["n_trials"].values.tolist() == [2, 3, 1]
