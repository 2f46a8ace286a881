"""Model comparison: pointwise log-likelihood on cells, PSIS-LOO, common cells of nested designs."""

import importlib
import re

import numpy as np
import polars as pl
import pytest
from scipy.special import expit
from scipy.stats import binom

from dvbstats.input.cells import CellTable
from dvbstats.model.formula import parse
from dvbstats.model.sample import SamplerSettings
from dvbstats.results.fitted import fit

cmp = importlib.import_module("dvbstats.results.compare")  # the package exports the function under the same name

SETTINGS = SamplerSettings(draws=300, tune=300, chains=2, seed=5)


@pytest.fixture(scope="module")
def cells() -> CellTable:
    """4 models x 6 values, a strong value effect and none of the model beyond noise."""
    rng = np.random.default_rng(11)
    value_effect = np.linspace(-1.5, 1.5, 6)
    rows = []
    for m in range(4):
        for v in range(6):
            n = 200
            rows.append({"model": f"m{m}", "value": f"v{v}", "n_prompts": n, "n_trials": n,
                         "n_deep": int(rng.binomial(n, expit(-0.5 + 0.1 * m + value_effect[v])))})
    return CellTable(pl.DataFrame(rows), ("model", "value"))


@pytest.fixture(scope="module")
def fits(cells):
    rich = fit(parse("y ~ 1 + (1|model) + (1|value)"), cells, settings=SETTINGS, progress=False)
    poor_cells = CellTable(cells.data.group_by("model").agg(pl.col("n_prompts", "n_trials", "n_deep").sum())
                           .sort("model"), ("model",))
    poor = fit(parse("y ~ 1 + (1|model)"), poor_cells, settings=SETTINGS, progress=False)
    return rich, poor


def test_log_likelihood_is_the_binomial_log_pmf(fits, cells):
    rich, _ = fits
    ll = cmp.log_likelihood(rich)
    post = rich.idata.posterior
    c, d = 1, 17
    eta = (post["Intercept"].values[c, d] + post["r_model"].values[c, d][[int(m[1]) for m in cells.data["model"]]]
           + post["r_value"].values[c, d][[int(v[1]) for v in cells.data["value"]]])
    expected = binom.logpmf(cells.data["n_deep"].to_numpy(), cells.data["n_trials"].to_numpy(), expit(eta))
    np.testing.assert_allclose(ll.values[c, d], expected, rtol=1e-10)


def test_poorer_model_is_evaluated_on_the_richer_cells(fits, cells):
    rich, poor = fits
    assert cmp.common_cells([poor, rich]).by == ("model", "value")
    assert cmp.log_likelihood(poor, cmp.common_cells([poor, rich])).sizes["cell"] == cells.data.height


def test_compare_ranks_the_model_with_the_true_effect_first(fits):
    rich, poor = fits
    table = cmp.compare({"rich": rich, "poor": poor})
    assert table.index[0] == "rich"
    assert table.loc["poor", "elpd_diff"] > 4 * table.loc["poor", "dse"]  # value effect of 3 logits: decisive
    assert table["n_cells"].tolist() == [24, 24]
    assert set(table.columns) >= {"elpd_loo", "p_loo", "elpd_diff", "dse", "weight", "n_bad_k", "formula"}


def test_fits_of_different_trials_are_refused(fits, cells):
    rich, _ = fits
    other = CellTable(cells.data.with_columns(n_deep=pl.col("n_deep") // 2), cells.by)
    other_fit = fit(parse("y ~ 1 + (1|model)"), other, settings=SamplerSettings(draws=100, tune=100, chains=2),
                    progress=False)
    with pytest.raises(cmp.ComparisonError, match="different trials"):
        cmp.compare([rich, other_fit])


# --- the reading and the command line (issue 24; issue 18 §6) --------------------------------


def _table(diffs: list[float], ses: list[float]) -> "pd.DataFrame":
    import pandas as pd

    names = [f"run{i}" for i in range(len(diffs))]
    return pd.DataFrame({"formula": [f"y ~ {n}" for n in names], "elpd_loo": [-100.0 - d for d in diffs],
                         "p_loo": 3.0, "elpd_diff": diffs, "dse": ses, "weight": [1.0] + [1.11e-16] * (len(diffs) - 1),
                         "n_bad_k": 0, "n_cells": 24}, index=names)


@pytest.mark.parametrize(("diffs", "ses", "expected"), [
    ([0.0, 0.77], [0.0, 1.14], "No model is preferred: the ELPD difference of the other fit to the best (run0) is within 2 SE"),
    ([0.0, 3.0], [0.0, 0.5], "No model is preferred"),  # beyond 2 SE but below 4 ELPD points: small
    ([0.0, 12.0], [0.0, 3.0], "run0 predicts held-out cells best; clearly worse (difference above 2 SE and at least 4 "
                              "ELPD points): run1 by 12.00 ± 3.00."),
    ([0.0, 12.0, 1.0], [0.0, 3.0, 2.0], "Not distinguishable from run0 (within 2 SE or below 4 ELPD points): run2 by 1.00 ± 2.00."),
])
def test_reading_says_which_fit_is_preferred(diffs, ses, expected):
    assert expected in cmp.reading(_table(diffs, ses))


def test_compare_cli_rounds_weights_and_prints_the_reading(monkeypatch, capsys):
    from dvbstats.cli import compare as cli

    monkeypatch.setattr(cli.Fit, "load", staticmethod(lambda run: run))
    monkeypatch.setattr(cli, "compare", lambda fits: _table([0.0, 0.77], [0.0, 1.14]))
    assert cli.main(["a", "b"]) == 0
    out = capsys.readouterr().out
    assert "e-16" not in out and "e+00" not in out and re.search(r"\b1\.00\b", out) and re.search(r"\b0\.00\b", out)
    assert "Reading: No model is preferred" in out


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped"])
def test_compare_cli_on_a_damaged_posterior_exits_2_naming_it(saved_run, tmp_path, capsys, damage):
    import shutil

    from dvbstats.cli import compare as cli

    run = tmp_path / "run"
    shutil.copytree(saved_run, run)
    data = (run / "posterior.nc").read_bytes()
    broken = {"garbage": b"not a netCDF file", "truncated": data[:200],
              "flipped": bytes(b ^ 0xFF if i > 4096 and i % 997 == 0 else b for i, b in enumerate(data))}[damage]
    (run / "posterior.nc").write_bytes(broken)
    assert cli.main([str(run), str(saved_run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run / 'posterior.nc'}") and "Traceback" not in err


@pytest.fixture(scope="module")
def saved_run(cells, tmp_path_factory):
    """A small fit saved as a run folder (a cell table as input)."""
    import dvbstats as dvb

    data = dvb.load(cells.data)
    fitted = dvb.Model("chose_deep ~ 1 + (1|model)", data).fit(draws=100, tune=100, chains=2, seed=1, progress=False)
    return fitted.save(tmp_path_factory.mktemp("saved") / "run")
