"""Agreement between models: kappa against statsmodels and by hand, the mixed models, the Bayesian
model's recovery of a known same-family effect, and the run-folder files."""

from __future__ import annotations

import json
import math

import arviz as az
import numpy as np
import polars as pl
import pytest
from scipy import stats
from statsmodels.stats.inter_rater import cohens_kappa

from dvbstats.input import runfolder
from dvbstats.input.registry import ModelTable
from dvbstats.model.sample import SamplerSettings
from dvbstats.results import agreement, agreement_pymc, bounds, paired
from dvbstats.results.agreement_logp import A_SD, B_SD, AgreementDensity, _lgamma_ratio
from dvbstats.simulate import dvb as simulate

#: 9 models in 3 groups of 2, 5 and 2, as the DVB developers (12 same-group pairs of 36).
GROUPS = {**{f"ga_{i}": "ga" for i in range(2)}, **{f"gb_{i}": "gb" for i in range(5)},
          **{f"gc_{i}": "gc" for i in range(2)}}


def _models(groups: dict[str, str], developer: str | None = "dev") -> ModelTable:
    """A model table whose ``family`` is the simulated group; every model has one ``developer``."""
    return ModelTable(pl.DataFrame({
        "model_id": list(groups), "short_name": list(groups), "developer": [developer] * len(groups),
        "family": list(groups.values()), "size_rank_in_family": [None] * len(groups),
        "params_b": [None] * len(groups)}))


def _counts(rows: list[tuple[int, int, int, int]]) -> pl.DataFrame:
    return pl.DataFrame([(f"m{i}", f"n{i}", sum(r), *r) for i, r in enumerate(rows)], schema=list(paired.COUNT_COLUMNS),
                        orient="row")


def test_kappa_by_hand_and_equal_statsmodels():
    tables = [(20, 5, 10, 15), (300, 40, 55, 600), (3, 0, 0, 7), (0, 4, 6, 0)]
    out = agreement.agreement_table(_counts(tables), _models({"m0": "x"}), group="family")
    first = out.row(0, named=True)
    # po = 0.7, pe = 0.5 * 0.6 + 0.5 * 0.4 = 0.5, kappa = 0.4; Fleiss-Cohen-Everitt variance 0.2016 / (50 * 0.25)
    assert first["agreement"] == pytest.approx(0.7) and first["chance"] == pytest.approx(0.5)
    assert first["kappa"] == pytest.approx(0.4)
    assert first["kappa_se"] ** 2 == pytest.approx(0.2016 / 12.5, rel=1e-12)
    assert first["kappa_low"] == pytest.approx(0.4 - 1.959963984540054 * np.sqrt(0.016128), rel=1e-9)
    for row, t in zip(out.iter_rows(named=True), tables, strict=True):
        ref = cohens_kappa(np.array(t).reshape(2, 2))
        assert (row["kappa"], row["kappa_se"], row["kappa_low"], row["kappa_high"]) == pytest.approx(
            (ref["kappa"], ref["std_kappa"], ref["kappa_low"], ref["kappa_upp"]), rel=1e-12)
        assert row["n_agree"] == t[0] + t[3]
    assert out["kappa"].to_list()[2:] == pytest.approx([1.0, -0.48 / 0.52])  # perfect; none against 0.48 by chance


def test_kappa_missing_when_chance_agreement_is_one_and_groups():
    out = agreement.agreement_table(_counts([(10, 0, 0, 0), (0, 0, 0, 0)]), _models({"m0": "x", "m1": "x"}),
                                    group="family")
    assert out["agreement"][0] == 1.0 and np.isnan(out["kappa"][0]) and np.isnan(out["agreement"][1])
    assert out["same_group"].to_list() == [False, False]  # n0, n1 are not in the table: no group, never same
    table = _models({"a": "x", "b": "x", "c": "y"}, developer=None)
    counts = _counts([(1, 1, 1, 1)] * 3).with_columns(model1=pl.Series(["a", "a", "b"]), model2=pl.Series(["b", "c", "c"]))
    fam = agreement.agreement_table(counts, table, group="family")
    assert fam["same_group"].to_list() == [True, False, False]
    dev = agreement.agreement_table(counts, table, group="developer")
    assert dev["same_group"].to_list() == [False, False, False]  # unknown developers share nothing
    with pytest.raises(ValueError, match="no column 'vendor'"):
        agreement.agreement_table(counts, table, group="vendor")


def test_model_order_groups_together():
    table = _models({"z": "g1", "a": "g2", "m": "g1"})
    assert agreement.model_order(table, ["a", "m", "z", "extra"], group="family") == ["m", "z", "a", "extra"]


def _pair_table(rng: np.random.Generator, b: float, sd_model: float, sd_pair: float) -> pl.DataFrame:
    """Pair-level agreement (fraction) from an additive multi-membership model with known same-group effect b (points)."""
    names = list(GROUPS)
    u = rng.normal(0, sd_model, len(names))
    rows = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            same = GROUPS[names[i]] == GROUPS[names[j]]
            y = 70 + b * same + u[i] + u[j] + rng.normal(0, sd_pair)
            rows.append({"model1": names[i], "model2": names[j], "n_shared": 1000, "agreement": y / 100,
                         "same_group": same, "group": "family"})
    return pl.DataFrame(rows)


def test_multi_membership_lmm_covers_truth_and_crossed_lmm_runs():
    rng = np.random.default_rng(11)
    covered, crossed_covered = 0, 0
    for _ in range(20):
        rows = {r["method"]: r for r in agreement.frequentist_models(_pair_table(rng, b=3.0, sd_model=2.0, sd_pair=1.0))}
        mm = rows["LMM multi-membership"]
        covered += mm["low"] <= 3.0 <= mm["high"]
        cr = rows["LMM crossed model1 + model2 (paper)"]
        crossed_covered += cr["low"] <= 3.0 <= cr["high"]
        assert mm["sd_pair"] > 0 and np.isfinite(cr["estimate"])
    assert covered >= 16  # nominal 95% of 20 = 19; allow Monte Carlo error and REML's small-sample Wald CI
    assert crossed_covered >= 10  # the misspecified paper model still runs; its coverage is reported, not promised


def test_difference_of_means_is_the_raw_difference():
    pairs = _pair_table(np.random.default_rng(2), b=3.0, sd_model=0.0, sd_pair=1.0)
    row = agreement.frequentist_models(pairs)[0]
    y = pairs["agreement"].to_numpy() * 100
    same = pairs["same_group"].to_numpy()
    assert row["estimate"] == pytest.approx(y[same].mean() - y[~same].mean())
    assert row["low"] < row["estimate"] < row["high"]


def test_two_models_give_no_agreement_model():
    sim = simulate.shared_propensity_trials({"a": "x", "b": "x"}, n_items=200, seed=1)
    res = agreement.agreement_analysis(sim.trials, _models({"a": "x", "b": "x"}), group="family")
    assert res.pairs.height == 1 and res.models.is_empty() and "at least 4 models" in res.notes["not_run"]


@pytest.mark.slow
def test_bayes_agreement_model_recovers_same_family_effect(tmp_path):
    sim = simulate.shared_propensity_trials(GROUPS, n_items=2000, seed=20251, sd_group_item=0.8)
    assert sim.effect_pp > 2  # a clear effect, of the paper's size (3.6 points)
    settings = SamplerSettings(draws=400, tune=400, chains=2, seed=3)
    res = agreement.agreement_analysis(sim.trials, _models(GROUPS), group="family", settings=settings)
    bayes = {r["scale"]: r for r in res.models.filter(pl.col("method").str.starts_with("Bayes")).iter_rows(named=True)}
    assert bayes["percentage points"]["low"] <= sim.effect_pp <= bayes["percentage points"]["high"]
    assert bayes["log-odds"]["low"] <= sim.effect_logit <= bayes["log-odds"]["high"]
    # and the truth of the estimand the interval claims: the population of pairs' effect
    assert bayes["percentage points"]["low"] <= sim.population_pp <= bayes["percentage points"]["high"]
    assert bayes["log-odds"]["low"] <= sim.population_logit <= bayes["log-odds"]["high"]
    assert bayes["percentage points"]["low"] > 0 and bayes["log-odds"]["p_positive"] > 0.97
    assert res.notes["diagnostics"]["divergences"] == 0
    assert res.notes["diagnostics"]["model_effects"] == "non-centred"  # thin data: (M-1) sd_model^2 / sd_pair^2 < 1
    assert "12 pairs share a family" in res.notes["statement"] and "10 from gb" in res.notes["statement"]
    # the grouping column is a parameter: with one developer for all, every pair is same-developer
    assert res.pairs["same_group"].sum() == 12
    runfolder.write_analysis(tmp_path, "agreement", res)
    assert pl.read_csv(tmp_path / "agreement.csv").height == 36
    assert pl.read_csv(tmp_path / "paired_tests.csv").height == 36
    assert pl.read_csv(tmp_path / "agreement_model.csv").height == 5
    assert json.loads((tmp_path / "agreement_methods.json").read_text())["group"] == "family"


def test_report_section_from_run_files(tmp_path):
    from test_report import Page, flat, make_run

    from dvbstats.report import render

    run = make_run(tmp_path / "runs")
    sim = simulate.shared_propensity_trials(GROUPS, n_items=300, seed=4)
    counts = paired.pair_counts(sim.trials, agreement.model_order(_models(GROUPS), list(GROUPS), "family"))
    pairs = agreement.agreement_table(counts, _models(GROUPS), "family")
    rows = agreement.frequentist_models(pairs)
    fitted = pl.DataFrame([{"group": "family", **agreement.group_means(pairs), **r} for r in rows])
    runfolder.write_analysis(run, "agreement", agreement.Agreement(
        pairs, paired.paired_tests(counts), fitted, {"group": "family", "statement": agreement.statement(pairs)}))
    text = flat(render(run, tmp_path / "reports", engine="pandoc"))
    page = Page(text)
    assert "sec-agreement" in page.ids and "fig-agreement" in page.ids and "fig-paired-p" in page.ids
    tests = page.tables["tbl-paired-tests"]
    assert len(tests) == 1 + bounds.MAX_PAIR_ROWS < 1 + 36  # one screen: the pairs with the smallest McNemar p
    assert f"{bounds.MAX_PAIR_ROWS} of 36 rows shown" in text
    smallest = paired.paired_tests(counts).to_pandas().sort_values("mcnemar_p", kind="stable").head(bounds.MAX_PAIR_ROWS)
    assert [r[:2] for r in tests[1:]] == smallest[["model1", "model2"]].values.tolist()
    assert [int(r[2].replace(",", "")) for r in tests[1:]] == smallest["n_shared"].tolist()
    model = page.tables["tbl-agreement-model"]
    assert [r[0] for r in model[1:]] == list(agreement.METHODS[:3])
    assert "12 pairs share a family" in text and "10 from gb" in text
    # the Bayesian interval's estimand, as calibration measured it (docs/calibration.md): pairs of these models in
    # general, not only these 36 pairs, with the counts of pairs that share a model treated as independent
    assert "same-family effect among pairs of these models, not only these 36 pairs" in text
    assert "pairs that share a model share that model" in text


def test_fit_hook_writes_tables_or_says_why_not(tmp_path):
    from dvbstats.benchmarks import BENCHMARKS
    from dvbstats.benchmarks.dvb import DVB
    from dvbstats.input.ingest import RECONCILIATION_SCHEMA, TrialTable
    from dvbstats.input.runfolder import write_analysis
    from dvbstats.pipeline import agreement_analysis

    def _agreement(bench, trials, models, settings, hdi_prob, out, log):  # the step, and its tables written
        result, note = agreement_analysis(bench, trials, models, settings, hdi_prob, log)
        if result is not None:
            write_analysis(out, "agreement", result)
        return note

    groups = {"a": "x", "b": "x"}
    sim = simulate.shared_propensity_trials(groups, n_items=100, seed=2)
    wrap = lambda data: TrialTable(data, (), pl.DataFrame(schema=RECONCILIATION_SCHEMA))  # noqa: E731
    settings = SamplerSettings()
    one = wrap(sim.trials.filter(pl.col("model") == "a"))
    assert _agreement(DVB, one, _models(groups), settings, 0.94, tmp_path, print).startswith("not run")
    assert _agreement(DVB, None, _models(groups), settings, 0.94, tmp_path, print).startswith("not run")
    # a benchmark that defines no agreement analysis (binary judgments) says so, whatever its trials
    assert _agreement(BENCHMARKS["binary"], wrap(sim.trials), _models(groups), settings, 0.94, tmp_path,
                      print).startswith("not run: binary judgments define no agreement analysis")
    assert not (tmp_path / "agreement.csv").exists()
    note = _agreement(DVB, wrap(sim.trials), _models(groups), settings, 0.94, tmp_path, print)
    assert "at least 4 models" in note  # two models: tables, but no agreement model
    assert pl.read_csv(tmp_path / "agreement.csv")["n_shared"].to_list() == paired.pair_counts(sim.trials)["n_shared"].to_list()
    assert (tmp_path / "paired_tests.csv").exists() and not (tmp_path / "agreement_model.csv").exists()
    assert "at least 4 models" in json.loads((tmp_path / "agreement_methods.json").read_text())["not_run"]


def _shared_propensity_table(seed: int) -> pl.DataFrame:
    sim = simulate.shared_propensity_trials(GROUPS, n_items=300, seed=seed)
    counts = paired.pair_counts(sim.trials, agreement.model_order(_models(GROUPS), list(GROUPS), "family"))
    return agreement.agreement_table(counts, _models(GROUPS), "family")


@pytest.mark.slow  # compiles the PyMC model
def test_the_pymc_sampler_draws_the_same_agreement_posterior():
    """``sampler="pymc"`` samples the PyMC model (:mod:`dvbstats.results.agreement_pymc`, reached only then), the
    default the hand-written density: the same posterior of ``b``, within Monte Carlo error."""
    table = _shared_propensity_table(5)
    runs = {sampler: agreement.bayes_fit(table, SamplerSettings(sampler=sampler, draws=500, tune=500, chains=2, seed=2))
            for sampler in ("pymc", "nutpie")}
    draws = {k: r.idata.posterior["b"].to_numpy().ravel() for k, r in runs.items()}
    assert "perf_counter_diff" in runs["pymc"].idata.sample_stats  # PyMC's NUTS drew it
    assert "perf_counter_diff" not in runs["nutpie"].idata.sample_stats
    se = np.sqrt(sum(d.var() / float(az.ess(r.idata, var_names=["b"])["b"]) for d, r in zip(draws.values(), runs.values())))
    assert abs(draws["pymc"].mean() - draws["nutpie"].mean()) < 4 * se
    assert {r["scale"] for r in runs["pymc"].rows} == {"percentage points", "log-odds"}


@pytest.mark.slow  # compiles the PyMC model twice
@pytest.mark.parametrize("centred", [True, False])
def test_hand_written_density_and_gradient_equal_pymc(centred):
    from dvbstats.results.agreement_logp import AgreementDensity

    table = _shared_propensity_table(5)
    pm_model = agreement_pymc.bayes_model(table, centred=centred)
    logp, dlogp = pm_model.compile_logp(), pm_model.compile_dlogp()
    _, same, members, names = agreement.pair_design(table)
    pairs = table.filter(pl.col("n_shared") > 0)
    ours = AgreementDensity(same, members, pairs["n_agree"].to_numpy(), pairs["n_shared"].to_numpy(), names,
                            centred=centred)
    order = [v.name for v in pm_model.value_vars]
    assert order == ["a", "b", "sd_model_log__", "sd_pair_log__", "u_zerosum__" if centred else "z_model_zerosum__"]
    sizes = [1, 1, 1, 1, len(names) - 1]
    assert ours.ndim == sum(sizes)
    constrained = pm_model.compile_fn(pm_model.unobserved_value_vars, inputs=pm_model.value_vars,
                                      on_unused_input="ignore")
    constrained_names = [v.name for v in pm_model.unobserved_value_vars]
    rng = np.random.default_rng(11)
    for _ in range(6):
        x = rng.normal(0, 1, ours.ndim)
        point = {n: (part if n.endswith("zerosum__") else part[0]) for n, part in zip(order, np.split(x, np.cumsum(sizes)[:-1]))}
        lp, grad = ours.logp_and_grad(x)
        assert lp == pytest.approx(float(logp(point)), rel=1e-10, abs=1e-8)
        np.testing.assert_allclose(grad, dlogp(point), rtol=1e-8, atol=1e-8)
        expanded, theirs = ours.expand(x), dict(zip(constrained_names, constrained(point)))
        for name in ("u", "diff_pp", "sd_model", "sd_pair", *(() if centred else ("z_model",))):
            np.testing.assert_allclose(expanded[name], theirs[name], rtol=1e-12, atol=1e-12)


def test_mixed_models_equal_statsmodels_with_dense_variance_components(monkeypatch):
    """From SPARSE_PAIRS pairs on the LMMs are fitted with sparse variance-component matrices (7x faster at
    100 models): the same REML fit as statsmodels with the dense matrices."""
    import statsmodels.api as sm
    from statsmodels.regression.mixed_linear_model import VCSpec

    monkeypatch.setattr(agreement, "SPARSE_PAIRS", 1)  # the sparse form on these few pairs

    table = _pair_table(np.random.default_rng(3), b=3.0, sd_model=2.0, sd_pair=1.0)
    y, same, members, _ = agreement.pair_design(table)
    crossed = {"model1": agreement._indicators(table["model1"].to_list()),
               "model2": agreement._indicators(table["model2"].to_list())}
    for components in (crossed, {"model": members}):
        row = agreement._mixed(y, same, components, "x")
        vc = VCSpec(list(components), [[[f"{n}[{i}]" for i in range(z.shape[1])]] for n, z in components.items()],
                    [[z] for z in components.values()])
        ref = sm.MixedLM(y, np.column_stack([np.ones_like(y), same]), groups=np.ones(len(y)),
                         exog_re=np.zeros((len(y), 0)), exog_vc=vc).fit(reml=True)
        assert row["estimate"] == pytest.approx(ref.params[1], rel=1e-6)
        assert (row["low"], row["high"]) == pytest.approx(tuple(ref.conf_int(alpha=0.05)[1]), rel=1e-6)
        assert row["p_value"] == pytest.approx(ref.pvalues[1], rel=1e-5)
        assert row["sd_model"] == pytest.approx(np.sqrt(np.sum(ref.vcomp)), rel=1e-5)
        assert row["sd_pair"] == pytest.approx(np.sqrt(ref.scale), rel=1e-6)


def test_lgamma_and_digamma_of_the_density_equal_scipy():
    from scipy.special import digamma, gammaln

    from dvbstats.results.agreement_logp import _lgamma_digamma

    x = np.concatenate([np.geomspace(1e-4, 1e8, 3000), np.linspace(9.0, 11.0, 201)])  # both sides of the shift
    lg, dg = np.array([_lgamma_digamma(v) for v in x]).T
    np.testing.assert_allclose(lg, gammaln(x), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(dg, digamma(x), rtol=1e-14, atol=1e-14)


def test_lgamma_ratio_of_the_density_exact_at_huge_arguments():
    """log Gamma(x + m) - log Gamma(x) and the digamma difference against their exact finite sums, from tiny x
    to the 1e14 of a beta-binomial at sd_pair 1e-7 (the difference of two log Gammas keeps no digit there)."""
    for x in np.concatenate([np.geomspace(1e-3, 1e15, 60), [9.5, 1e5 - 1, 1e5, 1e5 + 1]]):
        for m in (0, 1, 7, 120, 613):
            lg, dg = _lgamma_ratio(float(x), float(m))
            assert lg == pytest.approx(math.fsum(math.log(x + j) for j in range(m)), rel=1e-12, abs=1e-9)
            assert dg == pytest.approx(math.fsum(1 / (x + j) for j in range(m)), rel=1e-11, abs=1e-14)


def test_density_tends_to_the_binomial_as_the_pair_sd_vanishes():
    """At sd_pair = 1e-7 the beta-binomial is the binomial to about 1e-11: the log density is the binomial
    model's and the gradient in log sd_pair is the prior's and Jacobian's alone (1 - sd_pair^2). Before the
    fix both were noise of order 1 and up, and a chain that reached such a point froze (docs/calibration.md)."""
    table = _shared_propensity_table(5)
    _, same, members, names = agreement.pair_design(table)
    pairs = table.filter(pl.col("n_shared") > 0)
    k, n = pairs["n_agree"].to_numpy(), pairs["n_shared"].to_numpy()
    density = AgreementDensity(same, members, k, n, names, centred=False)
    log_sdp = np.log(1e-7)
    x = np.r_[0.3, 0.2, np.log(0.05), log_sdp, np.zeros(len(names) - 1)]
    lp, grad = density.logp_and_grad(x)
    q = 1 / (1 + np.exp(-(0.3 + 0.2 * same)))
    rest = (stats.norm.logpdf(0.3, 0, A_SD) + stats.norm.logpdf(0.2, 0, B_SD) + stats.halfnorm.logpdf(0.05) + np.log(0.05)
            + stats.halfnorm.logpdf(1e-7) + log_sdp - (len(names) - 1) * 0.5 * np.log(2 * np.pi))
    assert lp == pytest.approx(stats.binom.logpmf(k, n, q).sum() + rest, abs=1e-6)
    assert grad[3] == pytest.approx(1 - 1e-14, abs=1e-6)
