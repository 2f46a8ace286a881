"""Design analysis of the scaling slope (issue 23): the number-of-models axis, the closed form against
simulated power, the package's trend posterior inside the loop, and the benchmark's words in every plan."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from scipy.stats import norm

import dvbstats as dvb
from dvbstats.benchmarks import BENCHMARKS
from dvbstats.cli.design import main
from dvbstats.constants import HDI_PROB
from dvbstats.planning import output, slope
from dvbstats.planning.prior import DesignError, stated
from dvbstats.planning.questions import Question
from dvbstats.results import scaling

SLOPE = Question("slope", "scaling slope", "slope")


def known_sd_z_test(scores: np.ndarray, reps: int, family: np.ndarray, x: np.ndarray, model_sd: float) -> bool:
    """The frequentist test the closed form describes: GLS of the models' logit rates on size with family
    intercepts, covariance the run's stage-1 covariance plus the true model SD squared; |z| > z_0.97."""
    y, sigma = slope.stage_one(scores, reps)
    X = np.column_stack([np.eye(family.max() + 1)[family], x])
    w = np.linalg.inv(sigma + model_sd**2 * np.eye(len(y)))
    cov = np.linalg.inv(X.T @ w @ X)
    beta = (cov @ X.T @ w @ y)[-1]
    return abs(beta) / np.sqrt(cov[-1, -1]) > norm.ppf(0.5 + HDI_PROB / 2)


@pytest.mark.parametrize("rates, tau, omega, true_slope, model_sd, models, family_size, n, reps", [
    ({"A": 0.5}, 1.0, 0.3, -0.15, 0.1, 9, 3, 400, 1),  # items differ, a model x item part
    ({"A": 0.3, "B": 0.4}, 0.5, 0.0, 0.1, 0.0, 12, 2, 60, 3),  # families differ in level; repetitions
    ({"A": 0.75}, 1.5, 0.5, -0.12, 0.15, 20, 4, 800, 1),  # strong item variation, many models
])
def test_slope_closed_form_matches_simulated_power(rates, tau, omega, true_slope, model_sd, models, family_size, n,
                                                   reps):
    """The closed form's power against the rejection rate of its test on 2,000 simulated runs: within 3 MC
    SEs plus 0.02 (the delta method and the families' spread in level, which the closed form leaves out)."""
    prior = stated(rates, tau=tau, omega=omega, slope=true_slope, model_sd=model_sd, family_size=family_size)
    expected = slope.power(prior, SLOPE, models, n, reps)[0]
    family, x = slope.layout(models, family_size)
    runs = prior.resampled(2_000, 1)
    rejected = [known_sd_z_test(s, reps, family, x, model_sd) for s in slope.simulate_scores(runs, models, n, reps, 3)]
    power, se = np.mean(rejected), np.sqrt(np.mean(rejected) * (1 - np.mean(rejected)) / len(rejected))
    assert abs(power - expected) < 3 * se + 0.02, (power, expected, se)
    assert 0.15 < expected < 0.95  # the cases test something between the extremes


def test_bayesian_assurance_approaches_the_closed_form_with_many_families():
    """With 24 models in 12 families the trend model's SD is learnt: the assurance inside the loop (the
    package's trend posterior) is within 0.1 of the closed form's known-SD power (measured 0.86 against 0.93);
    with 6 models in 3 families it is barely learnt and the assurance falls far below it (0.05 against 0.42)."""
    prior = stated({"A": 0.5}, tau=1.0, slope=-0.1, model_sd=0.1, family_size=2)
    draws = prior.resampled(200, 2)
    for models in (24, 6):
        estimate, sd = slope.simulated_estimates(draws, models, 300, 1, seed=5)
        cf = slope.power(draws, SLOPE, models, 300, 1).mean()
        a = SLOPE.success(estimate, sd).mean()
        assert (abs(a - cf) < 0.1) if models == 24 else (a < cf - 0.2), (models, a, cf)


def test_layout_families_and_standardised_sizes():
    for models, size, families in ((6, 3, [3, 3]), (7, 3, [3, 4]), (8, 3, [3, 3, 2]), (3, 4, [3]), (9, 2, [2, 2, 2, 3])):
        family, x = slope.layout(models, size)
        assert np.bincount(family).tolist() == families
        assert (x**2).sum() == pytest.approx(models)  # centred in each family, scaled by their SD over all models
        assert all(abs(x[family == f].sum()) < 1e-12 for f in range(family.max() + 1))
        assert all(np.all(np.diff(x[family == f]) > 0) for f in range(family.max() + 1))  # ranks 1, 2, ...
    with pytest.raises(DesignError, match="--models 1"):
        slope.layout(1, 3)


def test_slope_posterior_moments_match_the_grid_mixture():
    """The slope's posterior mean and SD from the tau grid against draws of the mixture itself."""
    rng = np.random.default_rng(4)
    family, x = slope.layout(9, 3)
    y = -1 + 0.3 * x + rng.normal(0, 0.2, 9)
    post = scaling.slope_posterior(y, np.diag(np.full(9, 0.01)), family, x)
    t = rng.choice(len(post.tau), 200_000, p=post.weights / post.weights.sum())
    draws = rng.normal(post.mean[t, -1], np.sqrt(post.cov[t, -1, -1]))
    mean, sd = post.slope_moments()
    assert mean == pytest.approx(draws.mean(), abs=0.003) and sd == pytest.approx(draws.std(), rel=0.01)


def test_models_axis_and_recommendation(tmp_path):
    result = dvb.design(rates={"A": 0.5}, item_sd=1.0, scaling=True, slope=-0.25, model_sd=0.1, models=[4, 8, 16],
                        items=[100, 400], sims=60, out=tmp_path)
    sims = result.table.filter(pl.col("method") == "simulation")
    assert sorted(set(sims["models"])) == [4, 8, 16] and sims.height == 6
    assert (sims["trials"] == sims["models"] * sims["items"] * sims["reps"]).all()
    rec = result.recommendation["questions"][0]
    reached = sims.filter(pl.col("assurance") >= 0.8).sort("trials", "items")
    assert rec["simulation"]["models"] == reached["models"][0] and rec["simulation"]["items"] == reached["items"][0]
    assert result.recommendation["models"] == [4, 8, 16] and result.recommendation["family_size"] == 3
    assert "models x" in output.section(result.recommendation)
    assert json.loads((tmp_path / "recommendation.json").read_text())["questions"][0]["simulation"] == rec["simulation"]


def test_direction_rule_asks_for_the_prior_sign():
    result = dvb.design(rates={"A": 0.5}, item_sd=1.0, scaling=True, slope=-0.3, criterion="direction", models=[6],
                        items=[300], sims=30)
    assert result.recommendation["questions"][0]["rule"] == "P(slope < 0) > 0.95"
    q = Question("slope", "s", "slope", criterion="direction", sign=-1)
    assert q.success(np.array([-0.3, 0.3]), np.array([0.1, 0.1])).tolist() == [True, False]
    assert q.power(np.array([-0.3]), np.array([0.1]))[0] == pytest.approx(norm.cdf(3 - norm.ppf(0.95)))


@pytest.mark.parametrize("kwargs, message", [
    ({"slope": -0.2}, "--slope, --model-sd, --family-size: settings of the scaling question"),
    ({"scaling": True}, "--slope: the scaling question with stated rates needs the true slope"),
    ({"scaling": True, "slope": -0.2, "models": [1, 6]}, "--models: whole numbers of at least 2"),
    ({"scaling": True, "slope": -0.2, "family_size": 1}, "--family-size"),
    ({"scaling": True, "slope": -0.2, "model_sd": -1.0}, "--model-sd"),
    ({"benchmark": "mmlu"}, "--benchmark: one of"),
    ({"benchmark": "hvsb", "rate_name": "accuracy"}, "--rate-name: names the rate of binary judgments"),
])
def test_bad_scaling_arguments_name_the_argument(kwargs, message):
    args = {"rates": {"A": 0.5, "B": 0.4}, "item_sd": 0.5, "contrasts": ["A-B"], "items": [10], "sims": 10} | kwargs
    with pytest.raises(DesignError, match=message.replace("(", r"\(").replace(")", r"\)")):
        dvb.design(**args)


def test_a_pilot_sets_the_words_not_the_flags(tmp_path):
    with pytest.raises(DesignError, match="a pilot's own benchmark sets the words"):
        dvb.design(tmp_path, benchmark="hvsb", contrasts=["A-B"])


FOREIGN_WORDS = ("DVGR", "Deep Value", "chance", "deep value")


def _plan_text(tmp_path, argv, capsys) -> str:
    """Everything a plan says: the console, design.csv, recommendation.json and the report section."""
    assert main([*argv, "--sims", "20", "--quiet", "--out", str(tmp_path)]) == 0
    rec = json.loads((tmp_path / "recommendation.json").read_text())
    return "\n".join([capsys.readouterr().out, (tmp_path / "design.csv").read_text(),
                      json.dumps(rec), output.section(rec)])


def test_an_hvsb_plan_speaks_hvsb(tmp_path, capsys):
    """Stated HVSB effects: MR and ASR, lower is better; nothing of DVGR or chance."""
    text = _plan_text(tmp_path, ["--benchmark", "hvsb", "--rate", "A@none=0.2", "--rate", "A@targeted=0.35",
                                 "--rate", "B@none=0.25", "--rate", "B@targeted=0.3", "--item-sd", "0.9",
                                 "--condition", "targeted-none", "--contrast", "A-B", "--precision", "0.05",
                                 "--scaling", "--slope", "-0.2", "--models", "6", "--items", "100,400"], capsys)
    assert not [w for w in FOREIGN_WORDS if w in text], [w for w in FOREIGN_WORDS if w in text]
    assert "lower is better" in text and "misalignment rate (MR)" in text
    rec = json.loads((tmp_path / "recommendation.json").read_text())
    estimands = {q["question"]: q["estimand"] for q in rec["questions"]}
    assert estimands["targeted - none [A]"] == ("the attack success rate (ASR, targeted) of A minus the "
                                                "misalignment rate (MR) of A")
    assert estimands["scaling slope"].startswith("the change in the logit misalignment rate (MR) per")


def test_a_binary_plan_speaks_of_its_rate(tmp_path, capsys):
    """Stated binary effects named accuracy: no chance level, no direction, nothing of DVGR."""
    text = _plan_text(tmp_path, ["--rate-name", "accuracy", "--rate", "A=0.6", "--rate", "B=0.55", "--item-sd", "1",
                                 "--contrast", "A-B", "--precision", "0.05", "--items", "100,400"], capsys)
    assert not [w for w in FOREIGN_WORDS if w in text]
    assert "better" not in text
    rec = json.loads((tmp_path / "recommendation.json").read_text())
    assert rec["rate"] == "accuracy" and rec["direction"] == ""
    assert rec["questions"][0]["estimand"] == "the accuracy of A minus the accuracy of B"


def test_a_dvb_plan_says_dvgr(tmp_path, capsys):
    text = _plan_text(tmp_path, ["--benchmark", "dvb", "--rate", "A=0.6", "--rate", "B=0.55", "--item-sd", "1",
                                 "--contrast", "A-B", "--items", "100"], capsys)
    assert "Deep Value Generalization Rate" in text and "higher is better" in text


@pytest.fixture(scope="module")
def sized_pilot(tmp_path_factory):
    """A run folder of seven models in three families (sizes ranked) whose rate falls steeply with size
    (1 on the logit scale per rank), 150 shared items, a short fit."""
    root = tmp_path_factory.mktemp("sized")
    families = {"f": 3, "g": 2, "h": 2}
    models = [(f"{f}{r}", f, r) for f, g in families.items() for r in range(1, g + 1)]
    pl.DataFrame({"model_id": [m for m, _, _ in models], "short_name": [m for m, _, _ in models],
                  "developer": "x", "family": [f for _, f, _ in models],
                  "size_rank_in_family": [r for _, _, r in models], "params_b": None},
                 schema_overrides={"params_b": pl.Float64}).write_csv(root / "models.csv")
    rng = np.random.default_rng(8)
    u = rng.normal(0, 0.8, 150)
    level = {"f": 0.3, "g": -0.2, "h": 0.0}
    rows = [(m, f"q{i}", int(rng.random() < 1 / (1 + np.exp(-(level[f] - 1.0 * r + u[i])))))
            for m, f, r in models for i in range(150)]
    pl.DataFrame(rows, schema=["model", "item", "outcome"], orient="row").write_csv(root / "pilot.csv")
    data = dvb.load(root / "pilot.csv", benchmark="binary", models=root / "models.csv")
    fit = dvb.Model("outcome ~ 1 + (1|model) + (1|item)", data).fit(draws=300, tune=300, chains=2, progress=False)
    return fit.save(root / "run")


def test_pilot_trend_is_the_slope_prior(sized_pilot):
    """The pilot's slope draws follow the package's trend model on its per-model rates (sizes as ranks):
    their mean and SD match the grid posterior's, the slope is clearly negative as simulated, the family size
    is the pilot's median (2), and --slope replaces the slope while keeping the rest."""
    result = dvb.design(sized_pilot, scaling=True, models=[6, 12], items=[100, 400], sims=30)
    trend = result.prior.trend
    fit = dvb.Fit.load(sized_pilot)
    rates, levels = fit.level_draws("model")
    names = ["f1", "f2", "f3", "g1", "g2", "h1", "h2"]
    family = np.array([0, 0, 0, 1, 1, 2, 2])
    x = scaling.size_design(fit.model_table, names, "rank")[0]["size_std"].to_numpy()
    logits = np.log(rates / (1 - rates))[:, [levels.index(n) for n in names]]
    mean, sd = scaling.slope_posterior(logits.mean(0), np.cov(logits, rowvar=False), family, x).slope_moments()
    assert trend.slope.mean() == pytest.approx(mean, abs=4 * sd / np.sqrt(len(trend.slope)) + 0.01)
    assert trend.slope.std() == pytest.approx(sd, rel=0.1)
    assert mean + 2 * sd < 0 and trend.family_size == 2
    assert result.recommendation["questions"][0]["rule"] == "the 94% HDI of the slope excludes 0"
    assert result.recommendation["trend"] == "the pilot's trend over 7 models in 3 families"
    stated_slope = dvb.design(sized_pilot, scaling=True, slope=-0.1, models=[6], items=[100], sims=20).prior
    assert np.all(stated_slope.trend.slope == -0.1)
    assert stated_slope.trend.model_sd == pytest.approx(trend.model_sd)


def test_a_pilot_without_sizes_cannot_plan_the_slope(tmp_path):
    rng = np.random.default_rng(2)
    rows = [(m, f"q{i}", int(rng.random() < 0.4)) for m in ("a", "b", "c") for i in range(40)]
    pl.DataFrame(rows, schema=["model", "item", "outcome"], orient="row").write_csv(tmp_path / "p.csv")
    with pytest.warns(UserWarning):
        data = dvb.load(tmp_path / "p.csv", benchmark="binary")
    run = dvb.Model("outcome ~ 1 + (1|model)", data).fit(draws=100, tune=100, chains=1, progress=False).save(tmp_path / "r")
    with pytest.raises(DesignError, match="--scaling: the pilot has no scaling trend"):
        dvb.design(run, scaling=True, items=[50], sims=10)


def test_a_model_with_no_successes_keeps_the_covariance_positive_definite():
    """A simulated model that answers every item 0 has no item variance: its logit is that of half a trial
    and its variance the binomial one at that rate, so the trend's posterior can still be computed."""
    scores = np.vstack([np.zeros(50), np.random.default_rng(1).integers(0, 2, (3, 50))]).astype(float)
    y, sigma = slope.stage_one(scores, 1)
    assert y[0] == pytest.approx(np.log(0.01 / 0.99))
    assert sigma[0, 0] == pytest.approx(1 / (0.01 * 0.99 * 50)) and np.all(np.linalg.eigvalsh(sigma) > 0)
    family, x = slope.layout(4, 2)
    assert np.isfinite(scaling.slope_posterior(y, sigma, family, x, n_grid=51).slope_moments()).all()


def test_check_says_the_slope_is_not_checked(capsys, tmp_path):
    assert main(["--rate", "A=0.5", "--item-sd", "1", "--scaling", "--slope", "-0.3", "--models", "6", "--items", "100",
                 "--sims", "10", "--check", "2", "--quiet", "--out", str(tmp_path)]) == 0
    assert "full-fit check       not checked: a full fit of the slope" in capsys.readouterr().out
    assert not (tmp_path / "check.csv").exists()


def test_the_trend_compares_the_primary_condition():
    """HVSB's scaling trend compares the MR (no system prompt): the families' level is the mean logit of the
    models' rates under ``none``, never pooled with the attack prompts; arms without it use their first."""
    rates = {"A@none": 0.2, "A@targeted": 0.6, "B@none": 0.3, "B@targeted": 0.7}
    prior = stated(rates, tau=1.0, slope=-0.2, benchmark=BENCHMARKS["hvsb"])
    assert prior.trend.level[0] == pytest.approx(np.log(0.2 / 0.8) / 2 + np.log(0.3 / 0.7) / 2)
    only_attack = stated({"A@targeted": 0.6, "B@targeted": 0.7}, tau=1.0, slope=-0.2,
                         benchmark=BENCHMARKS["hvsb"])
    assert only_attack.trend.level[0] == pytest.approx(np.log(0.6 / 0.4) / 2 + np.log(0.7 / 0.3) / 2)
