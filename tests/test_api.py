"""The Python API: load → Model → fit → summary/rates/save → Fit.load, and the CLI as a layer over it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

import dvbstats as dvb
from dvbstats.cli import fit as cli
from dvbstats.model.formula import FormulaError
from dvbstats.simulate import dvb as simulate

FAST = dict(draws=150, tune=150, chains=2, seed=4, progress=False)


@pytest.fixture(scope="module")
def dumps(tmp_path_factory) -> list[str]:
    design = simulate.StudyDesign(feature_dims=[("Formal", "Colloquial")], n_prompts=300)
    effects = simulate.draw_effects(design, ["gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "llama-3-8b"],
                                    intercept=-0.6, log_n_train=0.0,
                                    sd={"model": 0.5, "value": 0.3, "feature": 0.2, "context": 0.2}, seed=2)
    sim = simulate.simulate(effects, design, seed=3, out_dir=tmp_path_factory.mktemp("dumps"))
    return [str(p) for p in sim.paths]


@pytest.fixture(scope="module")
def fitted(dumps):
    model = dvb.Model("chose_deep ~ 1 + (1|model) + (1|value)", dvb.load(dumps))
    return model, model.fit(**FAST)


def test_load_reads_paths_and_dataframes_alike(dumps):
    from_paths = dvb.load(dumps[0])
    frame = pl.read_csv(dumps[0], infer_schema=False)
    from_frame = dvb.load(frame.to_pandas())
    assert from_frame.trials.data.drop("source_file").equals(from_paths.trials.data.drop("source_file"))
    assert from_frame.quality().equals(from_paths.quality())
    assert [i["path"] for i in from_frame.inputs] == ["<DataFrame>"]
    assert "trial rows of 1 models" in repr(from_paths)


def test_a_formula_the_data_cannot_support_fails_before_sampling(dumps):
    data = dvb.load(dumps)
    with pytest.raises(ValueError, match="no_such_column"):
        dvb.Model("chose_deep ~ 1 + (1|no_such_column)", data)
    with pytest.raises(FormulaError):
        dvb.Model("chose_deep ~ 1 + (1|", data)


def test_fit_summary_and_rates_agree_with_the_run_folder_tables(fitted, tmp_path):
    model, fit = fitted
    summary = fit.summary()
    assert isinstance(summary, pd.DataFrame)
    assert {"Intercept", "sd[model]", "sd[value]"} <= set(summary.index)
    assert {"mean", "hdi_low", "hdi_high", "r_hat", "ess_bulk"} <= set(summary.columns)
    rates = fit.rates("model")
    out = fit.save(tmp_path / "run")
    dvgr = pl.read_csv(out / "dvgr.csv").filter(pl.col("model") != "overall").sort("model")
    np.testing.assert_allclose(rates.sort_values("model")["dvgr_mean"], dvgr["dvgr_mean"], rtol=1e-12)
    np.testing.assert_allclose(rates.sort_values("model")["raw_dvgr"], dvgr["raw_dvgr"], rtol=1e-12)
    assert "Fit('chose_deep ~ 1 + (1|model) + (1|value)'" in repr(fit)


def test_plot_forest_draws_the_rates_of_the_run_folder(fitted, tmp_path):
    """``Fit.plot_forest`` (the report's forest plot, provided by the report layer): one row per model and the
    overall rate, at the posterior means ``rates.csv`` holds."""
    _, fit = fitted
    figure = fit.plot_forest()
    labels = [t.get_text() for ax in figure.axes for t in ax.get_yticklabels()]
    table = fit.rates("model")
    assert all(any(str(m) in label for label in labels) for m in table["model"])
    points = np.concatenate([line.get_xdata() for ax in figure.axes for line in ax.get_lines()]
                            + [c.get_offsets()[:, 0] for ax in figure.axes for c in ax.collections if len(c.get_offsets())])
    saved = pd.read_csv(fit.save(tmp_path / "run") / "rates.csv")
    for mean in saved["rate_mean"]:
        assert np.isclose(points, mean, atol=1e-9).any()


def test_a_fit_and_its_analyses_load_no_pymc(dumps, tmp_path):
    """The default path (load, fit with nutpie's hand-written density, the analyses, save, report) never imports
    PyMC or PyTensor: only the PyMC backend, ``sampler="pymc"`` and the prior predictive check build a PyMC model."""
    code = ("import sys, warnings, dvbstats as dvb\n"
            "warnings.simplefilter('ignore')\n"
            f"model = dvb.Model('chose_deep ~ 1 + (1|model) + (1|value)', dvb.load({dumps!r}))\n"
            "fit = model.fit(draws=100, tune=100, chains=2, seed=1, progress=False)\n"
            f"fit.save({str(tmp_path / 'run')!r}, analyses=dvb.Analysis(contrasts=['all']).run(fit))\n"
            f"dvb.report({str(tmp_path / 'run')!r}, {str(tmp_path / 'reports')!r})\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pymc', 'pytensor', 'pypandoc')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "reports" / "run" / "report.html").exists()


def test_a_retried_fit_loads_back_in_the_form_it_was_sampled_in(fitted, tmp_path):
    """After the plan's fallback the manifest says "auto" was requested; the loaded fit still knows the
    form its draws come from (not the rule's first choice) and every attempt of its plan."""
    from dataclasses import replace

    _, fit = fitted
    retried = replace(fit, parametrization="noncentered")
    out = retried.save(tmp_path / "run")
    record = json.loads((out / "manifest.json").read_text())["parametrization"]
    assert (record["requested"], record["sampled"]) == ("auto", "noncentered")
    back = dvb.Fit.load(out)
    assert back.parametrizations() == retried.parametrizations() == dict.fromkeys(["model", "value"], "noncentered")
    assert back.sampling == fit.sampling


def test_a_run_folder_written_before_sampling_plans_loads(fitted, tmp_path):
    """A manifest without a ``sampling`` record (older dvbstats, with ``retry``/``auto_form``) loads: the plan is
    the one attempt it kept, its target acceptance and backend; the report's methods show it."""
    from dvbstats.input.runfolder import RunFolder
    from dvbstats.report.methods import methods

    _, fit = fitted
    out = fit.save(tmp_path / "run")
    meta = json.loads((out / "manifest.json").read_text())
    del meta["sampling"]
    meta["parametrization"] |= {"retry": None, "auto_form": None}
    (out / "manifest.json").write_text(json.dumps(meta))
    back = dvb.Fit.load(out)
    assert back.sampling.plan.source == "manifest" and len(back.sampling.attempts) == 1
    assert back.sampling.plan.first.target_accept == fit.settings.target_accept
    assert back.sampling.backend == fit.sampling.backend == "fastlogp"
    np.testing.assert_allclose(back.dvgr.values, fit.dvgr.values)
    assert "sampling plan" not in methods(RunFolder.read(out))  # nothing recorded, nothing shown
    assert "sampling plan" in methods(RunFolder.read(fit.save(tmp_path / "new")))


def test_a_saved_fit_loads_back_with_the_same_posterior_and_estimands(fitted, tmp_path):
    _, fit = fitted
    out = fit.save(tmp_path / "run", hdi_prob=0.9)
    back = dvb.Fit.load(out)
    assert str(back.formula) == str(fit.formula) and back.settings == fit.settings
    np.testing.assert_allclose(back.dvgr.values, fit.dvgr.values)
    assert back.diagnostics.summary()["max_r_hat"] == pytest.approx(fit.diagnostics.summary()["max_r_hat"])
    assert back.data.quality().equals(fit.data.quality())
    assert back.priors_used() == fit.priors_used()
    again = back.save(tmp_path / "again", hdi_prob=0.9)  # a loaded fit writes the same tables
    for table in ("dvgr.csv", "sd.csv", "fixed.csv", "margins.csv", "data_quality.csv"):
        assert pl.read_csv(again / table).equals(pl.read_csv(out / table)), table


@pytest.mark.slow
def test_the_cli_writes_what_the_api_writes(dumps, fitted, tmp_path, monkeypatch):
    _, fit = fitted
    monkeypatch.chdir(tmp_path)
    api_run = fit.save(tmp_path / "api", analyses=dvb.Analysis().run(fit))  # the CLI runs the analyses
    assert cli.main([*dumps, "--out", "cli", "--formula", "chose_deep ~ 1 + (1|model) + (1|value)", "--draws", "150",
                     "--tune", "150", "--chains", "2", "--seed", "4", "--quiet", "--allow-warnings"]) == 0
    assert sorted(p.name for p in Path("cli").iterdir()) == sorted(p.name for p in api_run.iterdir())
    cli_fit = dvb.Fit.load("cli")
    np.testing.assert_allclose(cli_fit.dvgr.values, fit.dvgr.values)  # same seed, same model, same draws


def test_prior_predictive_covers_the_data_with_wide_intervals(fitted):
    model, _ = fitted
    table = model.prior_predictive(draws=300, seed=1)
    per_model = table[table["by"] == "model"]
    assert len(per_model) == 3
    assert ((per_model["predicted_low"] < per_model["observed"]) & (per_model["observed"] < per_model["predicted_high"])).all()
    assert (per_model["predicted_high"] - per_model["predicted_low"] > 0.5).all()  # weakly informative


def test_a_fit_without_its_data_record_cannot_be_saved(fitted, tmp_path):
    from dataclasses import replace

    _, fit = fitted
    with pytest.raises(ValueError, match="dvbstats.Model"):
        replace(fit, data=None).save(tmp_path / "x")


def test_fit_loading_a_folder_that_is_not_a_run_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        dvb.Fit.load(tmp_path)


@pytest.mark.slow
def test_compare_cli_over_two_run_folders(fitted, dumps, tmp_path, capsys):
    from dvbstats.cli.compare import main as compare_main

    model, fit = fitted
    richer = dvb.Model("chose_deep ~ 1 + (1|model) + (1|value) + (1|context)", model.data).fit(**FAST)
    a, b = fit.save(tmp_path / "a"), richer.save(tmp_path / "b")
    assert compare_main([str(a), str(b), "--csv", str(tmp_path / "cmp.csv")]) == 0
    out = capsys.readouterr().out
    assert "elpd_loo" in out and "one observation is one design cell" in out
    table = pl.read_csv(tmp_path / "cmp.csv")
    assert table["n_cells"].n_unique() == 1 and table.height == 2
    assert json.loads((a / "manifest.json").read_text())["formula"] in table["formula"].to_list()


def test_importing_the_entry_point_modules_replaces_no_public_name():
    """``import dvbstats.compare`` (or ``.fit``, ``.report``, ``.design``) leaves ``dvb.compare`` the function:
    a first import of a subpackage binds it on its parent, so the package imports those first. In a fresh
    interpreter, where nothing is imported yet; ``python -m dvbstats.compare`` still runs its command line."""
    script = (
        "import dvbstats as dvb\n"
        "before = {name: getattr(dvb, name) for name in dvb.__all__}\n"
        "import dvbstats.compare, dvbstats.compare.__main__, dvbstats.fit, dvbstats.report, dvbstats.report.__main__\n"
        "import dvbstats.design, dvbstats.design.__main__, dvbstats.cli.command\n"
        "from dvbstats.results.compare import compare\n"
        "assert callable(dvb.compare) and dvb.compare is compare, dvb.compare\n"
        "changed = [name for name in dvb.__all__ if getattr(dvb, name) is not before[name]]\n"
        "assert not changed, changed\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    usage = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "dvbstats.compare", "--help"],
                           capture_output=True, text=True)
    assert usage.returncode == 0 and "PSIS-LOO" in usage.stdout, usage.stderr


def test_dvb_report_stays_the_function_when_the_report_modules_are_imported():
    import importlib

    for module in ("dvbstats.report", "dvbstats.report.build", "dvbstats.report.plots"):
        importlib.import_module(module)
    assert callable(dvb.report) and dvb.report.__module__ == "dvbstats.api"


def test_prior_predictive_with_random_slopes_is_refused_plainly_and_before_sampling(dumps, tmp_path, monkeypatch, capsys):
    """Random slopes carry their LKJ prior as a density (no forward sampler): the API says so, and the CLI
    exits 2 with one error line before any sampling, leaving no run folder."""
    model = dvb.Model("chose_deep ~ 1 + log_n_train + (1 + log_n_train|model) + (1|value)", dvb.load(dumps))
    with pytest.raises(ValueError, match="not available for formulas with random slopes"):
        model.prior_predictive(draws=50)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(dvb.Model, "fit", lambda *a, **k: pytest.fail("sampled before refusing"))
    code = cli.main([*dumps, "--out", "run", "--quiet", "--no-report", "--prior-predictive",
                     "--formula", "chose_deep ~ 1 + log_n_train + (1 + log_n_train|model) + (1|value)"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1 and "random slopes" in err
    assert not (tmp_path / "run").exists()
