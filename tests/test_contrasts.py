"""Contrasts and ranks: pure functions against hand computations, and interval coverage / P(best)
on simulated fits with known effects."""

import numpy as np
import polars as pl
import pytest
from scipy.special import expit

from dvbstats.input.cells import CellTable
from dvbstats.model.formula import parse
from dvbstats.model.sample import SamplerSettings
from dvbstats.results import contrasts
from dvbstats.results.fitted import fit

LEVELS = {"model": ["gpt-4.1", "gpt-4.1-mini", "gpt-4o"], "value": ["justice", "fidelity"]}


def test_parse_contrast_splits_hyphenated_names_on_the_one_valid_hyphen():
    assert contrasts.parse_contrast("gpt-4.1-mini-gpt-4o", LEVELS) == ("model", "gpt-4.1-mini", "gpt-4o")
    assert contrasts.parse_contrast("gpt-4.1-gpt-4.1-mini", LEVELS) == ("model", "gpt-4.1", "gpt-4.1-mini")
    assert contrasts.parse_contrast("value:justice-fidelity", LEVELS) == ("value", "justice", "fidelity")


@pytest.mark.parametrize("spec, message", [
    ("gpt-4.1-llama", "does not name two levels"),
    ("gpt-4o-gpt-4o", "itself"),
    ("colour:red-blue", "no factor 'colour'"),
    ("value:justice-care", "does not name two levels of 'value'"),
])
def test_bad_contrasts_name_the_levels(spec, message):
    with pytest.raises(contrasts.ContrastError, match=message) as err:
        contrasts.parse_contrast(spec, LEVELS)
    assert "levels:" in str(err.value) or "factors:" in str(err.value) or "itself" in message


def test_ambiguous_split_is_an_error():
    with pytest.raises(contrasts.ContrastError, match="ambiguous"):
        contrasts.parse_contrast("a-b-c", {"model": ["a", "b", "c", "a-b", "b-c"]})


def test_resolve_all_and_duplicates():
    wanted = contrasts.resolve(["all", "gpt-4o-gpt-4.1", "value:justice-fidelity"], LEVELS)
    assert wanted["model"] == [("gpt-4.1", "gpt-4.1-mini"), ("gpt-4.1", "gpt-4o"), ("gpt-4.1-mini", "gpt-4o"),
                               ("gpt-4o", "gpt-4.1")]
    assert wanted["value"] == [("justice", "fidelity")]


def test_contrast_table_by_hand():
    rng = np.random.default_rng(1)
    draws = rng.normal([0.3, 0.32, 0.5], 0.02, size=(4000, 3))
    t = contrasts.contrast_table(draws, ["a", "b", "c"], [("b", "a")], factor="model", hdi_prob=0.9, rope=0.01)
    diff = draws[:, 1] - draws[:, 0]
    row = t.row(0, named=True)
    assert row["diff_mean"] == pytest.approx(diff.mean())
    assert row["p_diff_above_0"] == pytest.approx((diff > 0).mean())
    assert row["p_in_rope"] == pytest.approx((np.abs(diff) < 0.01).mean())
    inside = ((diff >= row["diff_hdi_low"]) & (diff <= row["diff_hdi_high"])).mean()
    assert inside == pytest.approx(0.9, abs=0.002)
    assert row["diff_hdi_high"] - row["diff_hdi_low"] <= np.subtract(*np.quantile(diff, [0.95, 0.05])) + 1e-9
    with pytest.raises(contrasts.ContrastError, match="no level 'z'"):
        contrasts.contrast_table(draws, ["a", "b", "c"], [("a", "z")], factor="model", hdi_prob=0.9)


def test_ranks_and_p_superior_are_consistent_distributions():
    rng = np.random.default_rng(2)
    draws = rng.normal([0.30, 0.31, 0.40, 0.20], 0.01, size=(3000, 4))
    labels = ["a", "b", "c", "d"]
    ranks = contrasts.rank_draws(draws)
    assert (np.sort(ranks, axis=1) == np.arange(1, 5)).all()  # a permutation of 1..K per draw
    table = contrasts.rank_table(draws, labels, interval=0.94)
    dist = table.select(pl.col("^p_rank_.*$")).to_numpy()
    np.testing.assert_allclose(dist.sum(axis=1), 1)  # each level's rank distribution
    np.testing.assert_allclose(dist.sum(axis=0), 1)  # each rank is held by exactly one level per draw
    np.testing.assert_allclose(table["mean_rank"].sum(), 1 + 2 + 3 + 4)
    assert table.filter(pl.col("level") == "c")["p_best"][0] > 0.99
    assert table.filter(pl.col("level") == "d")["p_worst"][0] > 0.99
    assert (table["rank_low"] <= table["median_rank"]).all() and (table["median_rank"] <= table["rank_high"]).all()
    sup = contrasts.p_superior(draws, labels)
    m = sup.drop("level").to_numpy().astype(float)
    off = ~np.eye(4, dtype=bool)
    np.testing.assert_allclose((m + m.T)[off], 1)  # continuous draws: no ties
    assert np.isnan(np.diag(m)).all()
    assert m[0, 1] == pytest.approx((draws[:, 0] > draws[:, 1]).mean())


# ------------------------------------------------------------------------- simulated fits

MODELS = ["m1", "m2", "m3", "m4"]
VALUES = ["v1", "v2", "v3", "v4", "v5", "v6"]


def simulate_cells(seed: int, n: int = 150) -> tuple[CellTable, np.ndarray]:
    """Model x value binomial cells with model effects (SD 0.3), value effects (SD 0.5) and
    model x value effects (SD 0.2) drawn per seed; returns the cells and the true design-averaged
    rate per model (the mean of its cells' probabilities: every cell has the same prompts)."""
    rng = np.random.default_rng(seed)
    model = rng.normal(0, 0.3, len(MODELS))
    value = rng.normal(0, 0.5, len(VALUES))
    inter = rng.normal(0, 0.2, (len(MODELS), len(VALUES)))
    p = expit(-0.8 + model[:, None] + value[None, :] + inter)
    k = rng.binomial(n, p)
    data = pl.DataFrame({
        "model": np.repeat(MODELS, len(VALUES)), "value": np.tile(VALUES, len(MODELS)),
        "n_prompts": n, "n_trials": n, "n_deep": k.ravel(),
    }).with_columns(pl.col("n_prompts", "n_trials", "n_deep").cast(pl.Int64))
    return CellTable(data, ("model", "value")), p.mean(axis=1)


def coverage_and_best(seed: int) -> tuple[int, int, bool]:
    """One simulated fit: how many of the 6 pairwise 94% HDIs cover the true difference, and whether
    the truly best model has the highest P(best)."""
    cells, truth = simulate_cells(seed)
    result = small_fit(cells, seed)
    draws, labels = result.level_draws("model")
    table = contrasts.contrast_table(draws, labels, contrasts.all_pairs(MODELS), factor="model", hdi_prob=0.94)
    covered = sum(r["diff_hdi_low"] <= truth[MODELS.index(r["a"])] - truth[MODELS.index(r["b"])] <= r["diff_hdi_high"]
                  for r in table.iter_rows(named=True))
    ranks = contrasts.rank_table(draws, labels)
    best = ranks.sort("p_best", descending=True)["level"][0] == MODELS[int(np.argmax(truth))]
    one = result.contrast(MODELS[3], MODELS[0]).iloc[0]
    reverse = table.filter((pl.col("a") == MODELS[0]) & (pl.col("b") == MODELS[3])).row(0, named=True)
    assert one["diff_mean"] == pytest.approx(-reverse["diff_mean"])
    assert one["p_diff_above_0"] == pytest.approx(reverse["p_diff_below_0"])
    return covered, table.height, best


def small_fit(cells: CellTable, seed: int, sampler: str = "pymc"):
    """PyMC's sampler here: its compiled model is cached across fits of the same shape, so a loop over
    seeds compiles once (nutpie recompiles each fit)."""
    formula = parse("chose_deep ~ 1 + (1|model) + (1|value) + (1|model:value)")
    settings = SamplerSettings(sampler=sampler, draws=500, tune=500, chains=2, seed=seed)
    return fit(formula, cells, settings=settings, progress=False)


@pytest.mark.slow
def test_contrast_intervals_cover_the_truth_and_the_best_model_leads_p_best():
    """Over 12 seeds x 6 pairs (effects drawn per seed), 94% HDIs of the design-averaged differences
    cover the true difference at about their rate, and the truly best model has the highest P(best)
    in most seeds. The bounds allow for 72 intervals that are correlated within a seed; a broken
    interval (a point, a quantile of the wrong variable) covers far less."""
    covered, total, best_first = 0, 0, 0
    seeds = range(12)
    for seed in seeds:
        c, n, best = coverage_and_best(seed)
        covered, total, best_first = covered + c, total + n, best_first + best
        print(f"seed {seed}: {c}/{n} covered, best model first: {best}")
    print(f"coverage {covered}/{total} = {covered / total:.3f}; best first in {best_first}/{len(seeds)}")
    assert 0.80 <= covered / total <= 1.0
    assert best_first >= 0.7 * len(seeds)


# ------------------------------------------------------------------------- CLI and report


@pytest.fixture(scope="module")
def dumps(tmp_path_factory) -> list[str]:
    from dvbstats.simulate import dvb as simulate

    design = simulate.StudyDesign(feature_dims=[("Formal", "Colloquial")], n_prompts=300)
    models = ["gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "gpt-4.1-mini-2025-04-14"]
    effects = simulate.draw_effects(design, models, intercept=-0.8, log_n_train=0.0,
                                    sd={"model": 0.4, "value": 0.3, "feature": 0.2, "context": 0.2}, seed=5)
    sim = simulate.simulate(effects, design, seed=6, out_dir=tmp_path_factory.mktemp("dumps"))
    return [str(p) for p in sim.paths]


def test_cli_writes_contrasts_ranks_and_the_report_section(dumps, tmp_path, monkeypatch):
    from dvbstats.cli import fit as cli
    from dvbstats.input.runfolder import RunFolder
    from dvbstats.report.markup import text as escape
    from dvbstats.report.render import write_qmd

    monkeypatch.chdir(tmp_path)
    assert cli.main([*dumps, "--out", "run", "--draws", "150", "--tune", "150", "--chains", "2", "--quiet",
                     "--no-report", "--no-scaling", "--allow-warnings", "--formula",
                     "chose_deep ~ 1 + (1|model) + (1|value)", "--contrasts", "all",
                     "--contrast", "gpt-4o-gpt-4.1-mini", "--contrast", "value:justice-fidelity",
                     "--rope", "0.02"]) == 0
    table = pl.read_csv("run/contrasts.csv")
    assert table.filter(pl.col("factor") == "model").height == 3 + 1  # all 3 pairs and the reversed one
    assert table.filter(pl.col("factor") == "value").select("a", "b").rows() == [("justice", "fidelity")]
    assert table["rope"].unique().to_list() == [0.02] and table["p_in_rope"].is_between(0, 1).all()
    ranks = pl.read_csv("run/ranks.csv")
    assert sorted(ranks["level"]) == sorted(pl.read_csv("run/p_superior.csv")["level"])
    np.testing.assert_allclose(ranks.select(pl.col("^p_rank_.*$")).to_numpy().sum(axis=0), 1)
    qmd = write_qmd(RunFolder.read("run"), tmp_path / "report").read_text()
    assert "# Contrasts and ranks {#sec-contrasts}" in qmd and "{#tbl-contrasts}" in qmd
    assert (tmp_path / "report/figures/p-superior.png").is_file() and (tmp_path / "report/figures/ranks.png").is_file()
    assert escape("P(|difference| < 0.02)") in qmd


def test_cli_bad_contrast_exits_2_before_sampling(dumps, tmp_path, monkeypatch, capsys):
    from dvbstats.cli import fit as cli

    monkeypatch.chdir(tmp_path)
    assert cli.main([*dumps, "--out", "run", "--quiet", "--contrast", "gpt-4o-llama"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: contrast 'gpt-4o-llama' does not name two levels") and "Traceback" not in err
    assert not (tmp_path / "run" / "posterior.nc").exists()


def test_rank_plot_draws_a_mean_rank_outside_its_whole_number_interval(tmp_path):
    from dvbstats.report import plots

    rng = np.random.default_rng(5)
    draws = rng.normal([0.33, 0.30, 0.20], 0.01, size=(4000, 3))  # b beats a in about 2% of draws
    ranks = contrasts.rank_table(draws, ["a", "b", "c"]).to_pandas()
    assert ranks.loc[0, "rank_low"] == ranks.loc[0, "rank_high"] == 1 < ranks.loc[0, "mean_rank"]
    with plots.style():
        fig = plots.rank_intervals(ranks, interval=0.94)
    assert plots.save(fig, tmp_path / "ranks.png").stat().st_size > 0
