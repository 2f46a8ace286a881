"""Design and power analysis (issue 23): the closed form against simulated power, the design prior,
the questions' rules, argument checks, and the pilot path on a small run folder."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from scipy.special import expit

import dvbstats as dvb
from dvbstats.cli.design import main
from dvbstats.planning import assurance as sim
from dvbstats.planning import closed_form, output
from dvbstats.planning.check import check_rows
from dvbstats.planning.prior import DesignError, marginal_intercepts, stated
from dvbstats.planning.questions import Question

AB = Question("contrast", "A - B", "A", "B")


@pytest.mark.parametrize("rates, tau, omega, n, reps", [
    ({"A": 0.55, "B": 0.52}, 1.0, 0.3, 1500, 1),  # items differ, models share most of it
    ({"A": 0.30, "B": 0.22}, 0.5, 0.0, 120, 3),  # repetitions per item
    ({"A": 0.70, "B": 0.64}, 0.0, 0.0, 600, 1),  # no item variation: two Bernoulli samples on the same items
    ({"A": 0.20, "B": 0.15}, 1.5, 0.8, 300, 2),  # strong item and model x item variation
])
def test_closed_form_matches_simulated_power(rates, tau, omega, n, reps):
    """Miller's closed form (moments by quadrature) against the rejection rate of the paired z-test on
    4,000 simulated paired designs: within 3 Monte Carlo SEs (plus 0.01 for the normal approximation)."""
    prior = stated(rates, tau=tau, omega=omega)
    expected = closed_form.power(prior, AB, n, reps)[0]
    runs = sim.simulate_runs(prior.resampled(4_000, 1), ("A", "B"), n, reps, seed=7)
    estimate, se = sim.paired_estimates(runs, AB)
    power, mc_se = sim.assurance(AB.success(estimate, se))
    assert abs(power - expected) < 3 * mc_se + 0.01, (power, expected, mc_se)
    assert 0.1 < expected < 0.95  # the cases test something between the extremes


def test_closed_form_matches_simulated_power_of_the_direction_rule():
    """P(P(diff > 0) > 0.95): the one-sided rule, closed form against 4,000 simulated designs."""
    q = Question("contrast", "A - B", "A", "B", criterion="direction")
    prior = stated({"A": 0.40, "B": 0.36}, tau=0.8, omega=0.4)
    expected = closed_form.power(prior, q, 800, 1)[0]
    runs = sim.simulate_runs(prior.resampled(4_000, 1), ("A", "B"), 800, 1, seed=11)
    power, mc_se = sim.assurance(q.success(*sim.paired_estimates(runs, q)))
    assert abs(power - expected) < 3 * mc_se + 0.01, (power, expected, mc_se)
    assert 0.2 < expected < 0.95


def test_closed_form_standard_error_is_the_textbook_one_without_item_variation():
    """tau = omega = 0, K = 1: the paired SE is that of two independent proportions, sqrt(sum p(1-p) / n)."""
    prior = stated({"A": 0.6, "B": 0.5}, tau=0.0)
    m = closed_form.moments(prior.intercepts()[:, 0], prior.intercepts()[:, 1], prior.tau, prior.omega)
    se_rate, se_diff = closed_form.standard_errors(m, 400, 1)
    assert se_diff[0] == pytest.approx(np.sqrt((0.6 * 0.4 + 0.5 * 0.5) / 400), rel=1e-9)
    assert se_rate[0] == pytest.approx(np.sqrt(0.24 / 400), rel=1e-9)


def test_moments_match_monte_carlo():
    """Item-level variances and the covariance the shared difficulty induces, against 2 million items."""
    alpha_a, alpha_b, tau, omega = np.array([0.3]), np.array([-0.4]), np.array([1.1]), np.array([0.5])
    m = closed_form.moments(alpha_a, alpha_b, tau, omega)
    rng = np.random.default_rng(3)
    u = rng.normal(0, 1.1, 2_000_000)
    xa = expit(0.3 + u + rng.normal(0, 0.5, u.size))
    xb = expit(-0.4 + u + rng.normal(0, 0.5, u.size))
    assert m.mean_a[0] == pytest.approx(xa.mean(), abs=1e-3)
    assert m.var_b[0] == pytest.approx(xb.var(), abs=1e-3)
    assert m.cov[0] == pytest.approx(np.cov(xa, xb)[0, 1], abs=1e-3)
    assert m.within_a[0] == pytest.approx((xa * (1 - xa)).mean(), abs=1e-3)


def test_intercepts_reproduce_the_stated_rates():
    rates = np.array([[0.05, 0.5, 0.93]])
    scale = np.array([[1.7]])
    alpha = marginal_intercepts(rates, scale)
    z = np.random.default_rng(5).standard_normal(1_000_000)
    assert expit(alpha[0][:, None] + 1.7 * z).mean(axis=1) == pytest.approx(rates[0], abs=2e-3)


def test_success_rules():
    est, se = np.array([0.05, 0.05, -0.05, 0.01]), np.array([0.02, 0.03, 0.02, 0.0])
    assert Question("contrast", "x", "A", "B").success(est, se).tolist() == [True, False, True, False]
    assert Question("contrast", "x", "A", "B", criterion="direction").success(est, se).tolist() == [True, True, False, False]
    prec = Question("precision", "p", "A", target=0.04)
    assert prec.success(est, se).tolist() == [True, False, True, True]


def test_with_difference_sets_the_true_difference():
    prior = stated({"A": 0.5, "B": 0.4}, tau=0.5).with_difference("A", "B", 0.03)
    assert prior.rates[0].tolist() == pytest.approx([0.43, 0.4])
    with pytest.raises(DesignError, match="--difference"):
        stated({"A": 0.5, "B": 0.99}, tau=0.5).with_difference("A", "B", 0.03)


def test_sweep_recommends_the_smallest_sufficient_design(tmp_path):
    result = dvb.design(rates={"A": 0.55, "B": 0.45}, item_sd=1.0, contrasts=["A-B"], items=[50, 200, 800],
                        sims=200, out=tmp_path)
    rec = result.recommendation["questions"][0]
    sims = result.table.filter(pl.col("method") == "simulation").sort("items")
    assert sims["assurance"].to_list() == sorted(sims["assurance"].to_list())
    reached = sims.filter(pl.col("assurance") >= 0.8)["items"]
    assert rec["simulation"]["items"] == reached.min()
    assert {p.name for p in result.paths} == {"design.csv", "recommendation.json", "design.png"}
    written = json.loads((tmp_path / "recommendation.json").read_text())
    assert written["questions"][0]["simulation"] == rec["simulation"]
    assert pl.read_csv(tmp_path / "design.csv").height == result.table.height == 6


def test_unreached_target_is_said():
    result = dvb.design(rates={"A": 0.51, "B": 0.50}, item_sd=0.5, contrasts=["A-B"], items=[50, 100], sims=50)
    rec = result.recommendation["questions"][0]
    assert rec["simulation"] is None and "no design point reaches 0.8" in rec["simulation_note"]


def test_conditions_give_one_question_per_model():
    rates = {"A@none": 0.2, "A@targeted": 0.3, "B@none": 0.25, "B@targeted": 0.4}
    result = dvb.design(rates=rates, item_sd=0.8, contrasts=["A-B"], conditions=["targeted-none"], items=[100], sims=20)
    assert sorted(result.table["question"].unique()) == ["A - B [none]", "A - B [targeted]",
                                                          "targeted - none [A]", "targeted - none [B]"]


@pytest.mark.parametrize("kwargs, message", [
    ({"items": [1, 10]}, "--items: whole numbers of at least 2"),
    ({"reps": [0]}, "--reps"),
    ({"sims": 5}, "--sims"),
    ({"assurance": 1.2}, "--assurance"),
    ({"precision": 0.7}, "--precision"),
    ({"contrasts": ["A-C"]}, "--contrast 'A-C': give two models as A-B"),
    ({"conditions": ["x-y"]}, "--condition x-y: the design prior has no conditions"),
    ({"contrasts": []}, "nothing to plan"),
    ({"item_sd": None}, "--item-sd"),
    ({"rates": {"A": 1.5, "B": 0.5}}, "--rate: rates must lie strictly between 0 and 1"),
    ({"criterion": "bayes"}, "--criterion: one of hdi, direction"),
    ({"rates": {"A": 0.5, "B": 0.4, "C": 0.3}, "contrasts": ["A-B", "A-C"], "difference": 0.02},
     "--difference: an arm is the first of two questions"),
    ({"rates": {"A@none": 0.5, "B@targeted": 0.4}, "contrasts": ["A-B"]}, "--contrast A-B: nothing to compare"),
    ({"rates": {"A@none": 0.5, "B@targeted": 0.4}, "contrasts": [], "conditions": ["targeted-none"]},
     "--condition targeted-none: nothing to compare"),
])
def test_bad_arguments_name_the_argument(kwargs, message):
    args = {"rates": {"A": 0.5, "B": 0.4}, "item_sd": 0.5, "contrasts": ["A-B"], "items": [10], "sims": 10} | kwargs
    with pytest.raises(DesignError, match=message.replace("(", r"\(").replace(")", r"\)")):
        dvb.design(**args)


def test_out_that_is_a_file_is_refused_before_the_sweep(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DesignError, match="--out .*is a file"):
        dvb.design(rates={"A": 0.5, "B": 0.4}, item_sd=0.5, contrasts=["A-B"], items=[10], sims=10, out=tmp_path / "f")


def test_pilot_and_rates_exclude_each_other(tmp_path):
    with pytest.raises(DesignError, match="not both or neither"):
        dvb.design(contrasts=["A-B"])
    with pytest.raises(DesignError, match="--pilot .*not a run folder"):
        dvb.design(tmp_path, contrasts=["A-B"])


def test_cli_errors_exit_2_naming_the_flag(capsys, tmp_path):
    assert main(["--rate", "A=0.5", "--rate", "B=0.4", "--item-sd", "0.5", "--contrast", "A-B", "--sims", "3",
                 "--out", str(tmp_path / "d")]) == 2
    assert "error: --sims" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--rate", "A=0.5", "--items", "100,lots"])
    assert exc.value.code == 2
    assert "--items: comma-separated whole numbers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--rate", "A:0.5"])
    assert "--rate: ARM=RATE" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_cli_writes_and_prints(capsys, tmp_path):
    assert main(["--rate", "A=0.6", "--rate", "B=0.5", "--item-sd", "0.5", "--contrast", "A-B", "--precision",
                 "0.05", "--items", "100,400", "--sims", "50", "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "A - B: the 94% HDI of the difference excludes 0" in out and "precision B" in out
    assert (tmp_path / "design.png").stat().st_size > 0


def test_report_section_escapes_names():
    result = dvb.design(rates={"<b>A*": 0.6, "B_[x]": 0.5}, item_sd=0.5, contrasts=["<b>A*-B_[x]"], items=[50, 400],
                        sims=20)
    text = output.section(result.recommendation)
    assert text.startswith("# Planning the next run {#sec-design}")
    assert "<b>" not in text and r"\<b\>A\*" in text and r"B\_\[x\]" in text
    assert "(figures/design.png){#fig-design}" in text


def test_section_needs_a_pilot_and_out():
    with pytest.raises(DesignError, match="--section"):
        dvb.design(rates={"A": 0.5, "B": 0.4}, item_sd=0.5, contrasts=["A-B"], items=[10], sims=10, section=True)


@pytest.fixture(scope="module")
def pilot(tmp_path_factory):
    """A small run folder: three models x 80 shared items of known difficulty and a numeric item-level
    column (``length``), a short fit."""
    root = tmp_path_factory.mktemp("pilot")
    rng = np.random.default_rng(1)
    u, length = rng.normal(0, 1, 80), rng.integers(1, 6, 80)
    rows = [(m, f"q{i}", int(length[i]), int(rng.random() < expit(a + u[i] + 0.3 * length[i])))
            for m, a in (("A", 0.6), ("B", -0.4), ("C", 0.0)) for i in range(80)]
    pl.DataFrame(rows, schema=["model", "item", "length", "outcome"], orient="row").write_csv(root / "pilot.csv")
    with pytest.warns(UserWarning):
        data = dvb.load(root / "pilot.csv", benchmark="binary")
    fit = dvb.Model("outcome ~ 1 + length + (1|model) + (1|item)", data).fit(draws=300, tune=300, chains=2,
                                                                             progress=False)
    return fit.save(root / "run")


def test_pilot_posterior_is_the_design_prior(pilot):
    """Arm rates are the design-averaged rates draw by draw; the shared item variance is sd[item]^2 plus the
    fixed part's variance within a model (here b_length^2 Var(length), computed directly); nothing is the
    arms' own."""
    fit = dvb.Fit.load(pilot)
    result = dvb.design(pilot, contrasts=["A-B"], precision=0.05, items=[100, 400], sims=40)
    prior = result.prior
    assert prior.arms == ("A", "B", "C") and prior.n_draws == 600
    rates, levels = fit.level_draws("model")
    assert prior.rates[:, 0] == pytest.approx(rates[:, levels.index("A")])
    post = fit.idata.posterior
    sd_item = post["sd"].sel(term="item").values.ravel()
    cells = fit.cells.data.filter(pl.col("model") == "A")
    length = cells["length"].to_numpy().astype(float)
    w = cells["n_trials"].to_numpy() / cells["n_trials"].sum()
    var_length = w @ (length - w @ length) ** 2  # every model answers the same items: the same in each arm
    expected = sd_item**2 + post["b_length"].values.ravel() ** 2 * var_length
    assert prior.tau**2 == pytest.approx(expected, rel=1e-9)
    assert np.all(prior.omega == 0)
    assert result.recommendation["benchmark"] == "binary"
    assert set(result.table["question"]) == {"A - B", "precision A", "precision B", "precision C"}


def test_pilot_section_is_added_to_the_run_folder(pilot, tmp_path):
    result = dvb.design(pilot, contrasts=["A-C"], items=[50, 100], sims=20, out=tmp_path / "d", section=True)
    assert (pilot / "sections" / "design.md").read_text().startswith("# Planning the next run")
    assert (pilot / "sections" / "figures" / "design.png").stat().st_size > 0
    assert pilot / "sections" / "design.md" in result.paths


def test_pilot_contrast_with_stated_difference(pilot):
    result = dvb.design(pilot, contrasts=["B-C"], difference=0.1, items=[50], sims=20)
    b, c = result.prior.index("B"), result.prior.index("C")
    assert result.prior.rates[:, b] - result.prior.rates[:, c] == pytest.approx(0.1)


@pytest.mark.slow
def test_check_against_full_fits(tmp_path):
    """``check``: fresh runs at the recommended design, each also fitted by the package; the paired
    approximation's estimate within 0.25 posterior SDs of the full fit's and its SE within 15%."""
    result = dvb.design(rates={"A": 0.6, "B": 0.5}, item_sd=1.0, arm_item_sd=0.3, contrasts=["A-B"],
                        items=[100, 300], sims=100, check=3, out=tmp_path)
    entry = result.recommendation["questions"][0]["check"]
    assert entry["runs"] == 3 and result.checks.height == 3
    assert entry["max_abs_estimate_diff_sd"] < 0.25
    assert 0.85 < entry["median_se_ratio"] < 1.15
    assert (tmp_path / "check.csv").is_file()


@pytest.mark.slow
def test_check_can_be_finished_later():
    """``check_rows`` from ``start`` fits the same runs as a check from 0 (a stopped check is finished with
    ``--start``): the second run's row is the same either way."""
    prior = stated({"A": 0.6, "B": 0.5}, tau=1.0)
    args = {"runs": 2, "seed": 3, "draws": 200, "tune": 200, "chains": 2}
    whole = list(check_rows(prior, AB, 60, 1, **args))
    rest = list(check_rows(prior, AB, 60, 1, start=1, **args))
    assert len(whole) == 2 and len(rest) == 1 and rest[0] == whole[1]
