"""The ``auto`` parametrisation: one form for every term, chosen by depth, and another form when the checks still fail
(the plan's order, target acceptance first: tests/test_plan.py)."""

import itertools
import json

import numpy as np
import polars as pl
import pytest

from dvbstats.input import manifest
from dvbstats.input.cells import CellTable
from dvbstats.model import plan as plans
from dvbstats.model.design import design
from dvbstats.model.formula import DEFAULT_FORMULA, parse
from dvbstats.model.plan import CENTRED_MIN_TRIALS, default_low_rank, default_target_accept, term_parametrizations
from dvbstats.model.sample import SamplerSettings
from dvbstats.results.fitted import fit
from dvbstats.simulate import example

FORMULA = parse("chose_deep ~ 1 + (1|model) + (1|value) + (1|feature) + (1|context)")


def _grid(n_levels: dict[str, int], trials_per_cell: int) -> CellTable:
    """Every combination of the factors' levels, each cell with the same trials (30% deep)."""
    rows = list(itertools.product(*(range(k) for k in n_levels.values())))
    data = pl.DataFrame(rows, schema=list(n_levels), orient="row").with_columns(pl.all().cast(pl.String))
    n = trials_per_cell
    data = data.with_columns(n_prompts=pl.lit(n), n_trials=pl.lit(n), n_deep=pl.lit(round(0.3 * n)))
    return CellTable(data, tuple(n_levels))


#: The published design's levels: per-level trials then differ by term (feature thinnest, context richest).
PUBLISHED = {"model": 9, "value": 12, "feature": 16, "context": 8}


@pytest.mark.parametrize("levels, per_cell, form", [
    (PUBLISHED, 1, "zerosum"),  # 864 (feature) to 1,728 (context) trials per level
    (PUBLISHED, 10, "zerosum"),
    ({"model": 3, "value": 4, "feature": 4, "context": 2}, 6, "zerosum_noncentered"),  # 144 to 288
])
def test_auto_gives_every_term_one_form(levels, per_cell, form):
    """At 864-1,728 trials per level the rule used to centre model, value and context but not
    feature, a mix that failed its checks at such depths where either form alone passed
    (docs/model.md); now every term gets one form, at that form's target acceptance."""
    d = design(FORMULA, _grid(levels, per_cell))
    chosen = term_parametrizations(d, "auto")
    assert set(chosen) == {"model", "value", "feature", "context"}
    assert set(chosen.values()) == {form}
    assert default_target_accept(d, "auto") == (0.8 if form == "zerosum" else 0.95)


def test_the_thinnest_term_decides():
    """Feature poles at CENTRED_MIN_TRIALS - 1 trials per level keep every term non-centred, however rich the rest."""
    levels = {"model": 2, "value": 2, "feature": 40, "context": 2}
    per_cell = (CENTRED_MIN_TRIALS - 1) // 8  # 8 cells per feature level
    cells = _grid(levels, per_cell)
    assert cells.data.group_by("feature").agg(pl.col("n_trials").sum())["n_trials"].max() < CENTRED_MIN_TRIALS
    assert set(term_parametrizations(design(FORMULA, cells), "auto").values()) == {"zerosum_noncentered"}
    richer = _grid(levels, per_cell + 1)
    assert set(term_parametrizations(design(FORMULA, richer), "auto").values()) == {"zerosum"}


def test_a_slope_term_centres_its_intercept_only_when_the_data_are_rich():
    """Rich data: the slope term's intercept column centred, its slopes non-centred (a slope SD near 0
    is a funnel); thin data, no intercept, or a term whose mean nothing absorbs: no centred column."""
    def grid(per_cell: int) -> CellTable:  # 9 models x 4 values x 3 values of a numeric x
        cells = _grid({"model": 9, "value": 4, "x": 3}, per_cell)
        return CellTable(cells.data.with_columns(pl.col("x").cast(pl.Float64)), cells.by)

    cells = grid(50)  # 600 trials per model, 1,350 per value
    slopes = parse("chose_deep ~ 1 + x + (1 + x|model) + (1|value)")
    rich = term_parametrizations(design(slopes, cells), "auto")
    assert rich == {"value": "zerosum", "model__x": "zerosum_slopes_noncentered"}
    thin_models = term_parametrizations(design(slopes, grid(20)), "auto")  # 240 per model, 540 per value
    assert thin_models == {"value": "zerosum", "model__x": "zerosum_noncentered"}
    thin = grid(2)
    assert term_parametrizations(design(slopes, thin), "auto") == {"value": "zerosum_noncentered",
                                                                     "model__x": "zerosum_noncentered"}
    no_intercept = term_parametrizations(design(parse("chose_deep ~ 1 + x + (0 + x|model)"), cells), "auto")
    assert no_intercept == {"model__x": "zerosum_noncentered"}
    free_slope = term_parametrizations(design(parse("chose_deep ~ 1 + (1 + x|model)"), cells), "auto")
    assert free_slope == {"model__x": "slopes_noncentered"}  # no fixed b_x absorbs the slopes' mean


def test_a_rich_slope_grouping_centres_intercepts_of_medium_depth():
    """MATH-500's shape: models rich (640 trials each), items of medium depth (128 each, between ITEM_MAX_TRIALS
    and CENTRED_MIN_TRIALS). The rule used to non-centre everything (on the real matrix: sd[model|Intercept] R-hat
    1.17, bulk ESS 18); now the intercepts are centred and the slope columns alone non-centred. Models under
    CENTRED_MIN_TRIALS keep the old form."""
    formula = parse("outcome ~ 1 + condition + (1 + condition|model) + (1|item)")
    rich = _grid({"model": 8, "condition": 2, "item": 40}, 8)
    assert term_parametrizations(design(formula, rich), "auto") == {"item": "zerosum",
                                                                      "model__condition": "zerosum_slopes_noncentered"}
    thin = _grid({"model": 8, "condition": 2, "item": 40}, 5)  # 400 trials per model, 80 per item
    assert term_parametrizations(design(formula, thin), "auto") == {"item": "zerosum_noncentered",
                                                                      "model__condition": "zerosum_noncentered"}


@pytest.mark.slow
def test_a_fit_that_fails_its_checks_is_refitted_in_the_other_form(capsys):
    """30 draws cannot reach ESS 400: the first form fails (at every target acceptance the plan climbs to after
    divergences) and auto says so and refits in the other."""
    cells = _grid({"model": 3, "value": 4, "feature": 4, "context": 2}, 6)
    settings = SamplerSettings(draws=30, tune=100, chains=2, seed=1)
    res = fit(FORMULA, cells, settings=settings, parametrization="auto", progress=True)
    assert res.parametrization == "zerosum"
    note = res.sampling.note
    assert note.startswith("auto sampling plan: auto at target acceptance 0.95 failed its checks (")
    assert "ESS < 400" in note
    assert note.endswith("refitted with --parametrization zerosum at target acceptance 0.8")
    printed = " ".join(capsys.readouterr().out.split())  # wrapped to the terminal
    assert "sampling again: zerosum at target acceptance 0.8, 30 draws per chain (the checks still fail" in printed
    assert res.settings.target_accept == 0.8
    meta = manifest.record(run_name="x", synthetic=True, inputs=[], fit=res, quality=_quality(cells),
                          reconciliation=pl.DataFrame({"action": []}, schema={"action": pl.String}), hdi_prob=0.94,
                          command=None, timing={}, extra={})
    assert json.loads(json.dumps(meta, default=str))["parametrization"] == {
        "requested": "auto", "sampled": "zerosum",
        "terms": dict.fromkeys(["model", "value", "feature", "context"], "zerosum")}
    fixed = fit(FORMULA, cells, settings=settings, parametrization="zerosum_noncentered", progress=False)
    assert fixed.sampling.note is None and not fixed.diagnostics.ok  # a form the user chose is never changed


def _quality(cells: CellTable) -> pl.DataFrame:
    return cells.by_model().select("model", n_rows=pl.col("n_prompts"), n_used=pl.col("n_trials"))


@pytest.mark.slow
def test_default_fit_passes_at_medium_depth():
    """The issue's case: 1,200 prompts per model (650-1,300 trials per level) failed R-hat/ESS with the old rule."""
    f = parse(DEFAULT_FORMULA)
    res = fit(f, example.at_depth(1200, 1, f.variables), settings=SamplerSettings(seed=1), progress=False)
    assert res.diagnostics.ok, res.diagnostics.failures
    assert len(res.sampling.attempts) == 1  # the rule itself chose a form that passes


def test_an_item_term_is_non_centred_alone_beside_rich_terms():
    """(1|item) with a few trials per item beside terms of >= CENTRED_MIN_TRIALS per level: only the
    item term is non-centred, with a signed scale and the low-rank mass matrix at target acceptance 0.8;
    with a medium term
    beside it, every term keeps one form (no signed scale, diagonal mass matrix)."""
    formula = parse("chose_deep ~ 1 + (1|model) + (1|item)")
    rich = _grid({"model": 3, "item": 400}, 2)  # 800 trials per model, 6 per item
    assert term_parametrizations(design(formula, rich), "auto") == {"model": "zerosum", "item": "zerosum_signed"}
    assert default_target_accept(design(formula, rich), "auto") == 0.8  # signed: 20 steps per draw, not 31
    assert default_low_rank(design(formula, rich), "auto")
    medium = _grid({"model": 3, "item": 200}, 2)  # 400 per model: below CENTRED_MIN_TRIALS
    assert set(term_parametrizations(design(formula, medium), "auto").values()) == {"zerosum_noncentered"}
    assert not default_low_rank(design(formula, medium), "auto")
    assert default_target_accept(design(formula, medium), "auto") == 0.95
    alone = parse("chose_deep ~ 1 + (1|item)")  # no rich term beside the thin one
    assert term_parametrizations(design(alone, rich), "auto") == {"item": "zerosum_noncentered"}
    no_intercept = parse("chose_deep ~ 0 + (1|model) + (1|item)")  # nothing absorbs a mean: textbook forms
    assert term_parametrizations(design(no_intercept, rich), "auto") == {"model": "centered", "item": "noncentered"}
    assert not default_low_rank(design(no_intercept, rich), "auto")


@pytest.mark.slow
@pytest.mark.parametrize("item_sd", [0.0, 1.0])
def test_item_effects_sample_with_and_without_item_variation(item_sd):
    """auto's item form on the example's effects at 1,200 prompts per model (10,800 cells of one trial,
    648 to 1,300 trials per level of the other terms): every check passes whether the items differ
    (SD 1.0, recovered within its 94% interval) or not (SD 0: the SD stays near 0, where the log-SD
    non-centred form measured R-hat 1.03 and bulk ESS 190 on 3,000 prompts, docs/model.md)."""
    f = parse(DEFAULT_FORMULA + " + (1|prompt)")
    res = fit(f, example.at_depth(1200, 5, f.variables, item_sd=item_sd), settings=SamplerSettings(seed=5),
              progress=False)
    assert res.parametrizations()["prompt"] == "zerosum_signed" and res.settings.low_rank
    assert res.diagnostics.ok, res.diagnostics.failures
    sd = res.idata.posterior["sd_prompt"].values.ravel()
    low, high = np.quantile(sd, [0.03, 0.97])
    if item_sd:
        assert low < item_sd < high
    else:
        assert high < 0.3


#: the forms of HVSB's default formula where auto's rule gives its items a signed scale
SIGNED_ITEMS = {"scenario_type": "zerosum", "item": "zerosum_signed", "model__condition": "zerosum_slopes_noncentered"}


@pytest.mark.parametrize("forms, slope_levels, other", [
    ({"model": "zerosum"}, 0, "zerosum_noncentered"),
    ({"model": "zerosum_noncentered"}, 0, "zerosum"),
    ({"value": "zerosum", "model__x": "zerosum_slopes_noncentered"}, 9, "zerosum_noncentered"),
    ({"value": "zerosum_noncentered", "model__x": "zerosum_noncentered"}, 9, None),
    ({"model": "zerosum", "prompt": "zerosum_signed"}, 0, None),  # the other form would centre the items
    ({"value": "zerosum", "model__x": "zerosum"}, 9, "zerosum_slopes_noncentered"),  # HVSB's all-centred form
    (SIGNED_ITEMS, 4, "zerosum_slopes_noncentered"),  # HVSB on 4 models: items centred in the retry
    (SIGNED_ITEMS, 5, "zerosum_slopes_noncentered"),
    (SIGNED_ITEMS, 6, None),  # from FEW_SLOPE_LEVELS on, signed items are not centred
])
def test_a_failed_fit_is_retried_in_a_form_that_can_sample_it(forms, slope_levels, other):
    """A failed non-centred fit with random slopes is not retried with centred slope columns (they
    cannot sample a slope SD near zero); a failed all-centred one is retried with only its slope
    columns non-centred; a failed fit with signed items is not retried (centred items could not sample
    their SD near zero) unless a slope term has fewer than FEW_SLOPE_LEVELS levels; every other failed
    auto fit is retried in the other form."""
    from types import SimpleNamespace

    assert plans.FEW_SLOPE_LEVELS == 6
    slopes = [SimpleNamespace(levels=tuple(range(slope_levels)))] if slope_levels else []
    d = SimpleNamespace(terms=[k for k in forms if "__" not in k], slopes=slopes)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plans, "term_parametrizations", lambda *_: forms)
        assert plans.other_form(d, "auto") == other


def test_a_benchmark_form_is_sampled_first_and_retried_like_the_rules():
    """``measured_form`` (HVSB's measured form for its default formula) replaces the rule's first choice;
    a fit in it that fails its checks is refitted in the other form as the rule's would be; a form
    the user chose wins over it."""
    cells = _grid({"model": 3, "value": 4}, 60)  # 240 trials per model: the rule would say non-centred
    formula = parse("chose_deep ~ 1 + (1|model) + (1|value)")
    assert set(term_parametrizations(design(formula, cells), "auto").values()) == {"zerosum_noncentered"}
    settings = SamplerSettings(draws=30, tune=100, chains=2, seed=1)  # 60 draws cannot pass: a retry
    res = fit(formula, cells, settings=settings, measured_form="zerosum", progress=False)
    assert res.sampling.plan.source == "benchmark" and res.parametrization == "zerosum_noncentered"
    assert res.sampling.note.startswith("auto sampling plan: zerosum at target acceptance 0.8 failed its checks (")
    chosen = fit(formula, cells, settings=settings, parametrization="centered", measured_form="zerosum",
                 progress=False)
    assert chosen.sampling.plan.source == "user" and chosen.parametrization == "centered"
    assert chosen.sampling.note is None


def test_a_benchmark_form_needs_data_as_deep_as_it_was_measured_on():
    """HVSB's all-centred form is sampled first only when every random intercept holds at least
    MEASURED_FORM_MIN_TRIALS trials per level (the example: 34 judgments per item); thinner items (the
    4-model test trees: 12 per item, where it failed its checks) go by auto's rule. No sampling."""
    from dvbstats.benchmarks.hvsb import HVSB
    from dvbstats.model.plan import MEASURED_FORM_MIN_TRIALS, first_form

    formula = parse("misaligned ~ 1 + condition + (1 + condition | model) + (1|scenario_type) + (1|item)")
    assert HVSB.forms[HVSB.default_formula] == "zerosum"

    def cells(n_models: int) -> CellTable:  # one judgment per model x condition x item, 60 items in 4 types
        grid = _grid({"model": n_models, "condition": 3, "item": 60}, 1)
        grid = grid.data.with_columns(scenario_type=pl.col("item").cast(pl.Int32) % 4,
                                      condition=pl.col("condition").replace({"0": "none", "1": "untargeted",
                                                                             "2": "targeted"}))
        return CellTable(grid.with_columns(pl.col("scenario_type").cast(pl.String)),
                         ("model", "condition", "scenario_type", "item"))

    deep_models = -(-MEASURED_FORM_MIN_TRIALS // 3)  # judgments per item = 3 x models
    for n_models, first in [(deep_models, "zerosum"), (deep_models - 1, "auto"), (4, "auto"), (12, "zerosum")]:
        d = design(formula, cells(n_models))
        assert first_form(d, "auto", "zerosum") == first, n_models
        assert first_form(d, "zerosum_noncentered", "zerosum") == "zerosum_noncentered"  # the user's form stands
        assert first_form(d, "auto", None) == "auto"  # no measured form: the rule


def test_slope_columns_alone_can_be_asked_non_centred():
    """``zerosum_slopes_noncentered`` for the whole model (the retry of a failed all-centred fit with
    slopes): random intercepts centred zero-sum, a slope term's intercept column centred and its slope
    columns not, at the non-centred form's target acceptance."""
    from dvbstats.model.plan import centred_columns

    formula = parse("chose_deep ~ 1 + x + (1 + x | model) + (1|value)")
    grid = _grid({"model": 4, "value": 3, "x": 2}, 50).data.with_columns(pl.col("x").cast(pl.Int32))
    d = design(formula, CellTable(grid, ("model", "value", "x")))
    forms = term_parametrizations(d, "zerosum_slopes_noncentered")
    assert forms == {"value": "zerosum", "model__x": "zerosum_slopes_noncentered"}
    assert centred_columns(d.slopes[0], forms["model__x"]) == 1 and len(d.slopes[0].coefficients) == 2
    assert default_target_accept(d, "zerosum_slopes_noncentered") == 0.99  # 4 models: few slope levels
    settings = SamplerSettings(draws=30, tune=100, chains=2, seed=1)  # 60 draws cannot pass: a retry
    res = fit(formula, d.cells, settings=settings, measured_form="zerosum", progress=False)
    assert res.sampling.note.startswith("auto sampling plan: zerosum at target acceptance 0.8 failed its checks (")
    assert res.parametrization == "zerosum_slopes_noncentered" and res.parametrizations() == forms
    assert res.sampling.backend == "fastlogp" and "sd_model__x" in res.idata.posterior


@pytest.mark.parametrize("n_models, non_centred", [(4, 0.99), (5, 0.99), (6, 0.95), (12, 0.95)])
def test_a_slope_term_of_few_levels_is_sampled_at_higher_target_acceptance(n_models, non_centred):
    """Non-centred slope columns of a term with fewer than FEW_SLOPE_LEVELS levels get target acceptance
    0.99 (HVSB's ``(1 + condition|model)`` on 4 models failed its checks at 0.95 and passed at 0.99,
    docs/hvsb-format.md); from 6 levels on 0.95 stands; centred slope columns keep 0.8. No sampling."""
    from dvbstats.model.plan import FEW_SLOPE_LEVELS

    formula = parse("chose_deep ~ 1 + x + (1 + x | model) + (1|value)")
    grid = _grid({"model": n_models, "value": 3, "x": 3}, 50)
    d = design(formula, grid)
    assert (n_models < FEW_SLOPE_LEVELS) == (non_centred == 0.99)
    for form in ("auto", "zerosum_noncentered", "zerosum_slopes_noncentered"):
        assert "noncentered" in term_parametrizations(d, form)["model__x"]
        assert default_target_accept(d, form) == non_centred, form
    assert default_target_accept(d, "zerosum") == 0.8  # centred slopes: the few-levels rule is about non-centring
    no_slopes = design(parse("chose_deep ~ 1 + x + (1|model) + (1|value)"), grid)
    assert default_target_accept(no_slopes, "zerosum_noncentered") == 0.95  # intercepts alone: no slope term
