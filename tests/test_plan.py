"""The sampling plan (``dvbstats.model.plan``): what a design is sampled in first, the fallbacks in their order,
how ``fit`` executes them, and the record in the manifest (old run folders without one still load)."""

import json

import arviz as az
import numpy as np
import polars as pl
import pytest

from dvbstats.benchmarks.hvsb import HVSB
from dvbstats.input import manifest
from dvbstats.input.cells import CellTable
from dvbstats.model import plan as plans
from dvbstats.model.design import design, predictor_layout
from dvbstats.model.formula import parse
from dvbstats.model.priors import Priors
from dvbstats.model.sample import Diagnostics, SamplerSettings
from dvbstats.results import fitted
from tests.test_parametrization import _grid

DVB = parse("chose_deep ~ 1 + (1|model) + (1|value) + (1|feature) + (1|context)")
SLOPES = parse("outcome ~ 1 + condition + (1 + condition|model) + (1|value)")


def _steps(p: plans.SamplingPlan) -> list[tuple[str, float, str]]:
    return [(a.parametrization, a.target_accept, a.when) for a in p.attempts]


def test_a_rich_design_starts_centred_at_0_8_and_climbs_before_changing_form():
    """The DVB example's depth (864-1,728 trials per level): every term centred zero-sum at 0.8 with the diagonal
    mass matrix, as before this module (the default run's speed rests on it); after divergences the same form at
    0.95 and 0.99; after a narrow failure the same form with twice the draws; then the non-centred form."""
    d = design(DVB, _grid({"model": 9, "value": 12, "feature": 16, "context": 8}, 1))
    p = plans.plan(d)
    assert p.source == "rule" and set(p.terms.values()) == {"zerosum"} and not p.first.low_rank
    assert _steps(p) == [("auto", 0.8, "first"), ("auto", 0.95, "divergences"), ("auto", 0.99, "divergences"),
                         ("auto", None, "marginal"), ("zerosum_noncentered", 0.95, "failed")]
    assert [a.draws_factor for a in p.attempts] == [1, 1, 1, 2, 1]
    assert [a.when for a in plans.plan(d, fixed_draws=True).attempts] == ["first", "divergences", "divergences",
                                                                          "failed"]


def test_a_thin_design_starts_non_centred_at_0_95():
    d = design(DVB, _grid({"model": 3, "value": 4, "feature": 4, "context": 2}, 6))  # 144-288 trials per level
    p = plans.plan(d)
    assert set(p.terms.values()) == {"zerosum_noncentered"}
    assert _steps(p) == [("auto", 0.95, "first"), ("auto", 0.99, "divergences"), ("auto", None, "marginal"),
                         ("zerosum", 0.8, "failed")]


def test_the_issue_design_keeps_its_form_at_0_99_before_the_other_form():
    """Issue 19: 8 models x 2 conditions x 11 values, ``(1 + condition|model) + (1|value)``. The first form had
    1 divergence at 0.95; the old retry went to the non-centred form (R-hat 1.022, exit 3) where the same form at
    0.99 passes."""
    d = design(SLOPES, _grid({"model": 8, "condition": 2, "value": 11}, 400))
    p = plans.plan(d)
    assert dict(p.terms) == {"value": "zerosum", "model__condition": "zerosum_slopes_noncentered"}
    assert _steps(p) == [("auto", 0.95, "first"), ("auto", 0.99, "divergences"), ("auto", None, "marginal"),
                         ("zerosum_noncentered", 0.95, "failed")]


def test_an_item_term_keeps_the_low_rank_mass_matrix_and_is_never_centred():
    d = design(parse("chose_deep ~ 1 + (1|model) + (1|item)"), _grid({"model": 3, "item": 400}, 2))
    p = plans.plan(d)
    assert dict(p.terms) == {"model": "zerosum", "item": "zerosum_signed"}
    assert all(a.low_rank for a in p.attempts)
    assert _steps(p) == [("auto", 0.8, "first"), ("auto", 0.95, "divergences"), ("auto", 0.99, "divergences"),
                         ("auto", None, "marginal")]


def test_a_benchmark_form_is_first_on_deep_data_and_the_rule_on_thin():
    formula = parse(HVSB.default_formula)

    def cells(n_models: int) -> CellTable:  # one judgment per model x condition x item, 60 items in 4 types
        grid = _grid({"model": n_models, "condition": 3, "item": 60}, 1).data
        grid = grid.with_columns(scenario_type=(pl.col("item").cast(pl.Int32) % 4).cast(pl.String),
                                 condition=pl.col("condition").replace({"0": "none", "1": "untargeted",
                                                                        "2": "targeted"}))
        return CellTable(grid, ("model", "condition", "scenario_type", "item"))

    deep = plans.plan(design(formula, cells(12)), measured_form=HVSB.forms[HVSB.default_formula])
    assert deep.source == "benchmark" and set(deep.terms.values()) == {"zerosum"}
    assert _steps(deep) == [("zerosum", 0.8, "first"), ("zerosum", 0.95, "divergences"),
                            ("zerosum", 0.99, "divergences"), ("zerosum", None, "marginal"),
                            ("zerosum_slopes_noncentered", 0.95, "failed")]
    thin = plans.plan(design(formula, cells(4)), measured_form="zerosum")
    assert thin.source == "rule" and thin.first.parametrization == "auto"


def test_what_the_user_fixed_is_kept_in_every_attempt():
    """A form the user chose is sampled alone; a target acceptance the user chose is never raised (the form may
    still change, at that acceptance); a mass matrix the user chose is kept."""
    d = design(DVB, _grid({"model": 9, "value": 12, "feature": 16, "context": 8}, 1))
    assert _steps(plans.plan(d, "zerosum_noncentered")) == [("zerosum_noncentered", 0.95, "first")]
    assert plans.plan(d, "centered").source == "user"
    fixed = plans.plan(d, target_accept=0.9, low_rank=True)
    assert _steps(fixed) == [("auto", 0.9, "first"), ("auto", 0.9, "marginal"), ("zerosum_noncentered", 0.9, "failed")]
    assert all(a.low_rank for a in fixed.attempts)
    with pytest.raises(ValueError, match="parametrization must be one of"):
        plans.plan(d, "sideways")


def test_the_next_attempt_depends_on_how_the_last_one_failed():
    """Divergences climb the target acceptance; a narrow failure without them samples longer; a gross one (R-hat
    far above 1.01, ESS far below 400) goes straight to another form; after the last attempt the failed fit stands."""
    def failed(divergences=0, r_hat=1.2, ess=30.0):
        return {"divergences": divergences, "max_r_hat": r_hat, "min_ess_bulk": ess, "min_ess_tail": 2 * ess}

    d = design(DVB, _grid({"model": 9, "value": 12, "feature": 16, "context": 8}, 1))
    p = plans.plan(d)
    assert p.next(0, failed(3)) == 1 and p.next(1, failed(1)) == 2 and p.next(2, failed(1)) == 4
    assert p.next(0, failed(r_hat=1.02, ess=250)) == 3 and p.next(1, failed(r_hat=1.012, ess=900)) == 3
    assert p.next(0, failed(r_hat=1.02, ess=150)) == 4  # twice the draws would not reach ESS 400
    assert p.next(0, failed()) == 4 and p.next(3, failed(r_hat=1.02, ess=250)) == 4
    assert p.next(4, failed(5)) is None
    assert plans.plan(d, "zerosum").next(0, failed(2)) is None


class _Run:
    """Stands in for one sampler run: each call takes the next diagnostics (divergences, ok[, R-hat]) and records
    what was asked for; a pilot run (:data:`plans.PILOT`) gives ``pilots[form]`` (divergences, steps per draw[, the
    value of every draw of each named SD])."""

    def __init__(self, outcomes, pilots=None):
        self.outcomes, self.calls, self.pilots, self.piloted = list(outcomes), [], pilots or {}, []

    def __call__(self, d, priors, settings, parametrization, progress, backend, fixed_accept=False):
        if (settings.chains, settings.tune, settings.draws) == tuple(plans.PILOT.values()):
            self.piloted.append((parametrization, settings.target_accept))
            divergences, steps, *sds = self.pilots.get(parametrization, (0, 7.0))
            diverging = np.arange(10).reshape(2, 5) < divergences
            sd_draws = {f"sd_{name}": np.full((2, 5), v) for name, v in (sds[0] if sds else {}).items()}
            idata = az.from_dict(posterior={"Intercept": np.zeros((2, 5))} | sd_draws,
                                 sample_stats={"diverging": diverging, "n_steps": np.full((2, 5), steps)})
            return fitted.Fit(d, priors, settings, parametrization, idata, {"build_s": 0.0, "sample_s": 0.5}), "x"
        self.calls.append((parametrization, settings.target_accept, settings.draws))
        divergences, ok, *r_hat = self.outcomes.pop(0)
        idata = az.from_dict(posterior={"Intercept": np.zeros((2, 5))},
                             sample_stats={"diverging": np.zeros((2, 5), bool), "n_steps": np.full((2, 5), 7.0)})
        result = fitted.Fit(d, priors, settings, parametrization, idata, {"build_s": 0.1, "sample_s": 1.0})
        table = pl.DataFrame({"parameter": ["x"], "r_hat": [1.0 if ok or divergences else r_hat[0]],
                              "ess_bulk": [1000.0], "ess_tail": [1000.0]})
        vars(result)["diagnostics"] = Diagnostics(table, 0 if ok else divergences, 10)
        return result, "fastlogp"


def test_fit_raises_the_target_acceptance_before_it_changes_form(monkeypatch, capsys):
    """Issue 19: a fit with divergent transitions is sampled again in the same form at 0.99 before any other form
    (the old retry went straight to the other form). Every attempt is kept in ``Fit.sampling`` and said."""
    run = _Run([(1, False), (0, True)])
    monkeypatch.setattr(fitted, "_fit_once", run)
    cells = _grid({"model": 8, "condition": 2, "value": 11}, 400)
    res = fitted.fit(SLOPES, cells, settings=SamplerSettings(seed=1))
    assert run.calls == [("auto", 0.95, 1000), ("auto", 0.99, 1000)]
    assert res.parametrization == "auto" and res.settings.target_accept == 0.99 and res.diagnostics.ok
    assert [a["target_accept"] for a in res.sampling.attempts] == [0.95, 0.99]
    assert res.sampling.attempts[0]["diagnostics"]["divergences"] == 1
    assert res.timing["sample_s"] == 2.0 and res.sampling.backend == "fastlogp"
    assert res.sampling.note.startswith("auto sampling plan: auto at target acceptance 0.95 failed its checks (")
    out = " ".join(capsys.readouterr().out.split())
    assert "sampling again: auto at target acceptance 0.99, 1000 draws per chain (divergent transitions" in out


def test_fit_samples_longer_after_a_narrow_failure_and_changes_form_after_a_gross_one(monkeypatch):
    """A narrow miss without divergences (R-hat 1.02): the same form at the same target acceptance, twice the draws;
    a gross one (R-hat 1.3): another form, at the requested draws; the last attempt stands."""
    run = _Run([(2, False), (0, False, 1.02), (0, False, 1.3), (0, False, 1.3)])
    monkeypatch.setattr(fitted, "_fit_once", run)
    res = fitted.fit(SLOPES, _grid({"model": 8, "condition": 2, "value": 11}, 400), progress=False)
    assert run.calls == [("auto", 0.95, 1000), ("auto", 0.99, 1000), ("auto", 0.99, 2000),
                         ("zerosum_noncentered", 0.95, 1000)]
    assert res.parametrization == "zerosum_noncentered" and not res.diagnostics.ok
    assert [a["draws"] for a in res.sampling.attempts] == [1000, 1000, 2000, 1000]
    gross = _Run([(0, False, 1.3), (0, True)])
    monkeypatch.setattr(fitted, "_fit_once", gross)
    fitted.fit(SLOPES, _grid({"model": 8, "condition": 2, "value": 11}, 400), progress=False)
    assert gross.calls == [("auto", 0.95, 1000), ("zerosum_noncentered", 0.95, 1000)]
    chosen = _Run([(0, False, 1.02), (0, True)])  # draws the user chose: never sampled longer
    monkeypatch.setattr(fitted, "_fit_once", chosen)
    fitted.fit(SLOPES, _grid({"model": 8, "condition": 2, "value": 11}, 400), progress=False,
               settings=SamplerSettings(draws=300))
    assert chosen.calls == [("auto", 0.95, 300), ("zerosum_noncentered", 0.95, 300)]


def test_fit_with_a_fixed_form_makes_one_attempt(monkeypatch):
    run = _Run([(4, False)])
    monkeypatch.setattr(fitted, "_fit_once", run)
    res = fitted.fit(SLOPES, _grid({"model": 8, "condition": 2, "value": 11}, 400), parametrization="zerosum",
                     progress=False)
    assert run.calls == [("zerosum", 0.8, 1000)] and res.sampling.note is None


def test_the_plan_round_trips_through_the_manifest(monkeypatch):
    monkeypatch.setattr(fitted, "_fit_once", _Run([(2, False), (0, True)]))
    cells = _grid({"model": 8, "condition": 2, "value": 11}, 400)
    res = fitted.fit(SLOPES, cells, progress=False)
    quality = cells.by_model().select("model", n_rows=pl.col("n_prompts"), n_used=pl.col("n_trials"))
    meta = json.loads(json.dumps(manifest.record(
        run_name="x", synthetic=True, inputs=[], fit=res, quality=quality,
        reconciliation=pl.DataFrame({"action": []}, schema={"action": pl.String}), hdi_prob=0.94, command=None,
        timing={}, extra={}), default=str))
    manifest.check(meta, "manifest.json")
    back = plans.Sampling.from_manifest(meta)
    assert back.plan == res.sampling.plan and back.attempts == tuple(json.loads(json.dumps(res.sampling.attempts)))
    assert meta["parametrization"] == {"requested": "auto", "sampled": "auto", "terms": res.parametrizations()}
    assert meta["backend"] == "fastlogp" and "retry" not in meta["parametrization"]
    rows = dict(plans.describe(meta["sampling"]))
    assert rows["sampling plan"] == ("auto (pilot): auto at 0.95; then auto at 0.99 if divergences; then auto at the "
                                     "same x2 draws if marginal; then zerosum_noncentered at 0.95 if failed")
    assert rows["pilot runs"] == ("auto: 0 divergences, 7 leapfrog steps per draw; zerosum: 0 divergences, 7 leapfrog "
                                  "steps per draw")
    assert rows["attempt 1"].endswith("2 divergent transitions out of 10 draws")
    assert rows["attempt 2"] == "auto at target acceptance 0.99, diagonal mass matrix, 1000 draws per chain: checks passed"
    broken = {**meta, "sampling": {"plan": meta["sampling"]["plan"]}}
    with pytest.raises(manifest.ManifestError, match="sampling has no 'attempts'"):
        manifest.check(broken, "manifest.json")


def test_a_manifest_without_a_plan_gives_the_attempt_it_kept():
    """Run folders written before plans were recorded: the one attempt kept, its form, settings and backend."""
    old = {"parametrization": {"requested": "auto", "sampled": "zerosum_noncentered", "terms": {"model": "x"},
                               "retry": "auto parametrisation (zerosum) failed its checks", "auto_form": None},
           "sampler": {"target_accept": 0.95, "low_rank": False}, "backend": "fastlogp",
           "diagnostics": {"ok": True, "failures": []}}
    s = plans.Sampling.from_manifest(old)
    assert s.plan.source == "manifest" and s.plan.requested == "auto"
    assert _steps(s.plan) == [("zerosum_noncentered", 0.95, "first")]
    assert s.backend == "fastlogp" and s.note is None
    older = {"parametrization": {"requested": "auto"}, "sampler": {}, "diagnostics": {"ok": False, "failures": ["x"]}}
    s = plans.Sampling.from_manifest(older)
    assert s.plan.first.parametrization == "auto" and s.plan.first.target_accept is None and s.backend is None
    assert dict(plans.describe(s.as_dict()))["attempt 1"] == ("auto at target acceptance (not recorded), "
                                                             "diagonal mass matrix: x")


def test_fit_has_no_retry_auto_form_or_backend_fields():
    from dataclasses import fields

    names = {f.name for f in fields(fitted.Fit)}
    assert not names & {"retry", "auto_form", "backend"} and "sampling" in names


def test_a_pilot_is_run_only_where_the_rule_guesses_about_slopes():
    """Candidates only where the rule samples rich data with slope columns alone non-centred: not on the DVB
    example's formula (no slopes: its default run is sampled as before), not for a benchmark's measured form, thin
    data or a form the user chose."""
    rich = design(SLOPES, _grid({"model": 8, "condition": 2, "value": 11}, 400))
    assert plans.plan(rich).candidates == ("auto", "zerosum")
    assert plans.plan(rich, "zerosum_slopes_noncentered").candidates == ()
    assert plans.plan(rich, measured_form="zerosum").candidates == ()
    thin = design(SLOPES, _grid({"model": 8, "condition": 2, "value": 11}, 2))
    assert plans.plan(thin).candidates == ()
    assert plans.plan(design(DVB, _grid({"model": 9, "value": 12, "feature": 16, "context": 8}, 1))).candidates == ()
    assert plans.choose(rich, {"auto": {"divergences": 0, "steps_per_draw": 19.3},
                               "zerosum": {"divergences": 0, "steps_per_draw": 7.0}}) == "zerosum"
    assert plans.choose(rich, {"auto": {"divergences": 0, "steps_per_draw": 19.3},
                               "zerosum": {"divergences": 3, "steps_per_draw": 7.0}}) == "auto"


def test_the_level_standard_error_is_the_inverse_root_of_a_levels_binomial_information():
    """4 models x 2 conditions x 3 values, 50 trials per cell, 15 deep: a model's 6 cells and a value's 8 give
    information 6 w and 8 w (w = 50 p (1 - p), p = 15.5 / 51); the centred condition column (+-0.5) a quarter."""
    d = design(SLOPES, _grid({"model": 4, "condition": 2, "value": 3}, 50))
    w = 50 * (15.5 / 51) * (1 - 15.5 / 51)
    intercept, slope = d.slopes[0].sd_names
    assert plans.level_se(d) == pytest.approx({"value": 1 / np.sqrt(8 * w), intercept: 1 / np.sqrt(6 * w),
                                               slope: 2 / np.sqrt(6 * w)})


def test_the_pilot_never_centres_an_sd_it_puts_below_its_level_standard_error():
    """Calibration data (docs/model.md): short pilots of both forms had no divergence, the all-centred form was
    kept for its fewer steps, and the full fit diverged at the small end of an SD the data cannot resolve level by
    level (sd[value] 0.022 with a level standard error of 0.13: 58 divergences at 0.8). An SD whose pilot lower
    decile is below its level standard error is sampled non-centred: a slope column alone keeps the rule's form
    (intercepts centred, slopes not), an intercept SD makes every term non-centred; SDs far above their standard
    errors leave the choice to divergences and steps, as before."""
    d = design(SLOPES, _grid({"model": 8, "condition": 2, "value": 11}, 400))
    se = plans.level_se(d)
    intercept, slope = d.slopes[0].sd_names

    def pilots(**low):
        sd_low = {name: 10 * v for name, v in se.items()} | {name: se[name] / 2 for name in low.values()}
        return {"auto": {"divergences": 0, "steps_per_draw": 19.3, "sd_low": sd_low},
                "zerosum": {"divergences": 0, "steps_per_draw": 7.0, "sd_low": sd_low}}

    assert plans.choose(d, pilots()) == "zerosum"
    assert plans.funnels(d, pilots(a=slope)) == {slope} and plans.choose(d, pilots(a=slope)) == "auto"
    assert plans.choose(d, pilots(a="value")) == "zerosum_noncentered"
    assert plans.choose(d, pilots(a=intercept, b=slope)) == "zerosum_noncentered"
    assert plans.centred_sds(d, "auto") == {"value", intercept} and plans.centred_sds(d, "zerosum_noncentered") == set()
    p = plans.plan(d, pilots=pilots(a="value"))
    assert p.source == "pilot" and set(p.terms.values()) == {"zerosum_noncentered"}
    assert _steps(p) == [("zerosum_noncentered", 0.95, "first"), ("zerosum_noncentered", 0.99, "divergences"),
                         ("zerosum_noncentered", None, "marginal")]


def test_fit_starts_from_the_form_the_pilot_prefers(monkeypatch):
    """On issue 19's design the all-centred form took 7 leapfrog steps per draw against 19-34 (benchmarks/out):
    the pilot keeps it, the plan starts from it at its target acceptance, its fallbacks end in the rule's form;
    the pilots' figures and time are kept."""
    run = _Run([(0, True)], pilots={"auto": (0, 19.3), "zerosum": (0, 7.0)})
    monkeypatch.setattr(fitted, "_fit_once", run)
    res = fitted.fit(SLOPES, _grid({"model": 8, "condition": 2, "value": 11}, 400), progress=False)
    assert run.piloted == [("auto", 0.95), ("zerosum", 0.8)] and run.calls == [("zerosum", 0.8, 1000)]
    p = res.sampling.plan
    assert p.source == "pilot" and p.pilots["zerosum"]["steps_per_draw"] == 7.0 and p.candidates == ()
    assert p.attempts[-1].parametrization == "zerosum_slopes_noncentered" and "pilot_s" in res.timing
    assert plans.SamplingPlan.from_dict(json.loads(json.dumps(p.as_dict()))) == p
    diverging = _Run([(0, True)], pilots={"auto": (0, 19.3), "zerosum": (2, 7.0)})
    monkeypatch.setattr(fitted, "_fit_once", diverging)
    fitted.fit(SLOPES, _grid({"model": 8, "condition": 2, "value": 11}, 400), progress=False)
    assert diverging.calls == [("auto", 0.95, 1000)]
    cells = _grid({"model": 8, "condition": 2, "value": 11}, 400)
    small = round(plans.level_se(design(SLOPES, cells))["value"] / 2, 4)  # the pilot record keeps 4 decimals
    funnel = _Run([(0, True)], pilots={"auto": (0, 19.3, {"value": small}), "zerosum": (0, 7.0, {"value": small})})
    monkeypatch.setattr(fitted, "_fit_once", funnel)
    p = fitted.fit(SLOPES, cells, progress=False).sampling.plan
    assert funnel.calls == [("zerosum_noncentered", 0.95, 1000)] and p.pilots["zerosum"]["sd_low"] == {"value": small}


@pytest.mark.parametrize("benchmark, forms, accept", [
    ("dvb", dict.fromkeys(["model", "value", "feature", "context"], "zerosum"), 0.8),
    ("hvsb", dict.fromkeys(["scenario_type", "item", "model__condition"], "zerosum"), plans.HIGH_DIMENSION_ACCEPT),
])
def test_the_examples_are_sampled_as_before(benchmark, forms, accept):
    """The default runs whose speed is benchmarked (bench_speed.py, bench_hvsb.py) start as they did before the
    plan: every term centred zero-sum with the diagonal mass matrix, and no pilot; at target acceptance 0.8, HVSB's
    2,095 parameters (its 2,000 items) at HIGH_DIMENSION_ACCEPT."""
    import dvbstats as dvb

    model = dvb.Model(data=dvb.load(benchmark=benchmark))
    p = plans.plan(model.design, measured_form=model.measured_form)
    assert dict(p.terms) == forms and p.candidates == ()
    assert (p.first.target_accept, p.first.low_rank, p.first.draws_factor) == (accept, False, 1)


def test_high_dimensional_posteriors_are_sampled_at_the_efficient_acceptance():
    """From HIGH_DIMENSION parameters the rule's 0.8 becomes HIGH_DIMENSION_ACCEPT (divergences still climb from
    there); below it, and where thin data take 0.95, nothing changes. The count is the full density's."""
    rasch = parse("outcome ~ 1 + (1|model) + (1|item)")
    for items, accept in [(600, 0.8), (1200, plans.HIGH_DIMENSION_ACCEPT)]:
        d = design(rasch, _grid({"model": 6, "item": items}, 1))
        cols, _ = predictor_layout(d)
        assert plans.dimension(d) == cols.max() + 1 + len(d.sd_labels) == 1 + 6 + items + 2
        p = plans.plan(d)
        assert p.first.target_accept == accept
        assert [a.target_accept for a in p.attempts if a.when == "divergences"] == [a for a in (0.8, 0.95, 0.99)
                                                                                   if a > accept]
    thin = design(parse("outcome ~ 1 + (1|model) + (1|value)"), _grid({"model": 6, "value": 1200}, 1))
    assert plans.default_target_accept(thin, "zerosum_noncentered") == 0.95
    assert plans.plan(design(rasch, _grid({"model": 6, "item": 1200}, 1)), target_accept=0.9).first.target_accept == 0.9


def test_the_item_marginal_path_samples_what_is_left_at_the_rules_0_8(monkeypatch):
    """HIGH_DIMENSION_ACCEPT is for the full density's dimension: integrated out, the items leave a few data-rich
    parameters, sampled at 0.8; the full density keeps 0.65, and a target acceptance the user chose is kept."""
    class Sampled(Exception):
        pass

    seen = []

    def run(compiled, settings, progress):
        seen.append(settings.target_accept)
        raise Sampled

    monkeypatch.setattr(fitted, "run_nutpie", run)
    d = design(parse("outcome ~ 1 + (1|model) + (1|item)"), _grid({"model": 6, "item": 1200}, 1))
    assert plans.plan(d).first.target_accept == plans.HIGH_DIMENSION_ACCEPT
    settings = SamplerSettings(target_accept=plans.HIGH_DIMENSION_ACCEPT)
    for backend, fixed in [("auto", False), ("auto", True), ("fastlogp", False)]:
        with pytest.raises(Sampled):
            fitted._fit_once(d, Priors({}), settings, "auto", False, backend, fixed_accept=fixed)
    assert seen == [0.8, plans.HIGH_DIMENSION_ACCEPT, plans.HIGH_DIMENSION_ACCEPT]
