"""Coding the formula on the cells: R's model.matrix columns, random-term layouts, and every refusal."""

import numpy as np
import polars as pl
import pytest

from dvbstats.input.cells import CellTable
from dvbstats.model.coding import DesignError
from dvbstats.model.design import design
from dvbstats.model.plan import term_parametrizations
from dvbstats.model.formula import parse


def _cells() -> CellTable:
    data = pl.DataFrame({
        "model": ["a", "a", "a", "b", "b", "b", "c", "c", "c"],
        "cond": ["x", "y", "z"] * 3,
        "flag": [True, False, False, True, True, False, False, True, False],
        "n": [1.0, 2.0, 4.0, 2.0, 4.0, 1.0, 4.0, 1.0, 2.0],
        "size": [7.0] * 3 + [8.0] * 3 + [70.0] * 3,
        "n_prompts": [10] * 9, "n_trials": [10, 20, 30, 10, 20, 30, 10, 20, 30], "n_deep": [3] * 9})
    return CellTable(data, ("model", "cond", "flag", "n", "size"))


def _coded(text: str):
    d = design(parse(text), _cells())
    return list(d.coefficients), d.X + d.centers, d


def test_treatment_coding_against_first_or_chosen_level():
    labels, X, d = _coded("y ~ cond")
    assert labels == ["cond[y]", "cond[z]"] and d.fixed == ("cond_y", "cond_z")
    assert X[:3].tolist() == [[0, 0], [1, 0], [0, 1]]
    labels, X, _ = _coded('y ~ C(cond, ref="z")')
    assert labels == ["cond[x]", "cond[y]"] and X[:3].tolist() == [[1, 0], [0, 1], [0, 0]]


def test_sum_coding_and_booleans():
    labels, X, _ = _coded("y ~ C(cond, sum) + flag")
    assert labels == ["cond[S.x]", "cond[S.y]", "flag[true]"]
    assert X[:3, :2].tolist() == [[1, 0], [0, 1], [-1, -1]] and X[:3, 2].tolist() == [1, 0, 0]


def test_no_intercept_codes_the_first_factor_by_indicators_as_r_does():
    labels, X, d = _coded("y ~ 0 + cond + flag")
    assert labels == ["cond[x]", "cond[y]", "cond[z]", "flag[true]"]  # flag by contrasts, as R
    assert not d.centers.any()  # no intercept: columns are not centred


def test_interactions_factor_by_numeric_and_star():
    labels, X, _ = _coded("y ~ cond * log2(n)")
    assert labels == ["cond[y]", "cond[z]", "log2(n)", "cond[y]:log2(n)", "cond[z]:log2(n)"]
    assert X[:3, 3].tolist() == [0, 1, 0] and X[:3, 4].tolist() == [0, 0, 2]
    assert X[3:6, 4].tolist() == [0, 0, 0] and X[3:6, 3].tolist() == [0, 2, 0]
    # without the factor's margin, R codes it by indicators inside the interaction
    labels, _, _ = _coded("y ~ log(n) + cond:log(n)")
    assert labels == ["log(n)", "cond[y]:log(n)", "cond[z]:log(n)"]  # log(n) is the margin: contrasts
    labels, _, _ = _coded("y ~ cond:log(n)")
    assert labels == ["cond[x]:log(n)", "cond[y]:log(n)", "cond[z]:log(n)"]  # no margin: indicators, as R


def test_centring_and_scale_are_trial_weighted():
    _, _, d = _coded("y ~ n")
    w = _cells().data["n_trials"].to_numpy()
    x = _cells().data["n"].to_numpy()
    assert d.centers[0] == pytest.approx(w @ x / w.sum())
    z = _coded("y ~ scale(n)")[2].X[:, 0]
    assert w @ z == pytest.approx(0, abs=1e-9) and w @ z**2 / w.sum() == pytest.approx(1)


def test_log_transform():
    _, X, _ = _coded("y ~ log(size)")
    assert X[0, 0] == pytest.approx(np.log(7))


def test_slopes_layout_and_names():
    d = design(parse("y ~ n + (1 + n|model) + (0 + cond||model:flag)"), _cells())
    s, t = d.slopes
    assert s.coefficients == ("Intercept", "n") and s.levels == ("a", "b", "c")
    assert s.sd_names == ["model__Intercept", "model__n"] and s.pair_labels == ["model|Intercept,n"]
    assert t.coefficients == ("cond[x]", "cond[y]", "cond[z]") and not t.pairs
    assert d.prior_names == ["intercept", "b_n", "sd_model__Intercept", "sd_model__n", "sd_model__flag__cond_x",
                             "sd_model__flag__cond_y", "sd_model__flag__cond_z", "cor_model__n"]
    w = d.cells.data["n_trials"].to_numpy()
    assert w @ s.Z[:, 1] == pytest.approx(0)  # centred with the intercept


def test_zero_sum_only_where_a_fixed_coefficient_absorbs_the_mean():
    d = design(parse("y ~ n + (1 + n|model) + (0 + size|cond)"), _cells())
    kinds = term_parametrizations(d, "zerosum")
    assert kinds == {"model__n": "zerosum", "cond__size": "centered"}
    d = design(parse("y ~ 0 + (1|model)"), _cells())
    assert term_parametrizations(d, "auto") == {"model": "noncentered"}


def test_interaction_margins_move_into_main_terms():
    d = design(parse("y ~ (1|model) + (1|cond) + (1|model:cond) + (1|model:flag)"), _cells())
    assert d.absorbed == {"model": (("model__cond", 3),), "cond": (("model__cond", 3),), "model__cond": (),
                          "model__flag": ()}
    assert d.terms[3].dims == ("model__flag",)  # flag has no main term: laid out flat


@pytest.mark.parametrize("text, message", [
    ("y ~ context", r"'context' but the cells have no such column"),
    ("y ~ (1 + size|model)", "'size' does not vary within any level of 'model'"),
    ("y ~ (1 + cond|cond)", "does not vary within any level"),
    ("y ~ log(cond)", "is not numeric"),
    ('y ~ C(cond, ref="w")', "'w' is not a level of 'cond'.*levels: x, y, z"),
    ("y ~ size + C(size)", "collinear"),
    ("y ~ model + size", "collinear"),
    ("y ~ n + C(n)", "collinear"),
])
def test_design_errors(text, message):
    with pytest.raises(DesignError, match=message):
        design(parse(text), _cells())


def test_one_level_factor_and_constant_column_are_refused():
    c = _cells()
    one = CellTable(c.data.with_columns(cond=pl.lit("x"), k=pl.lit(2.0)), c.by + ("k",))
    with pytest.raises(DesignError, match=r"factor cond has a single level \('x'\)"):
        design(parse("y ~ cond"), one)
    with pytest.raises(DesignError, match="'k' is constant"):
        design(parse("y ~ k"), one)
    with pytest.raises(DesignError, match="log needs positive"):
        design(parse("y ~ log(n)"), CellTable(c.data.with_columns(n=pl.col("n") - 2), c.by))
    with pytest.raises(DesignError, match="missing in 3 of 9"):
        design(parse("y ~ n"), CellTable(c.data.with_columns(n=pl.when(pl.col("n") > 3).then(None).otherwise("n")), c.by))


def test_nesting_lays_out_as_its_expansion():
    a = design(parse("y ~ (1|model/cond)"), _cells())
    b = design(parse("y ~ (1|model) + (1|model:cond)"), _cells())
    assert [t.dims for t in a.terms] == [t.dims for t in b.terms] == [("model",), ("model__cond",)]
    assert all((x.index == y.index).all() for x, y in zip(a.terms, b.terms))


def test_linear_predictor_of_slope_terms_is_each_cells_row_times_its_columns():
    """Slope terms enter the linear predictor per distinct (level, Z row) pair, gathered onto the cells:
    equal to summing each cell's level row times its own Z row (the former (draws, cells, p) gather)."""
    from dvbstats.model.design import linear_predictor

    d = design(parse("y ~ n + (1 + n|model) + (0 + cond||model:flag)"), _cells())
    rng = np.random.default_rng(3)
    draws = {"Intercept": rng.normal(size=5), "b_n": rng.normal(size=5)}
    draws |= {f"r_{s.name}": rng.normal(size=(5, len(s.levels), len(s.coefficients))) for s in d.slopes}
    expected = draws["Intercept"][:, None] + draws["b_n"][:, None] * d.X[:, 0]
    for s in d.slopes:
        level, _, pair = s.rows
        assert (level[pair] == s.index).all()
        expected = expected + np.einsum("ncp,cp->nc", draws[f"r_{s.name}"][:, s.index, :], s.Z)
    assert np.allclose(linear_predictor(d, draws), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("text", [
    "y ~ 1 + size + cond + (1|model) + (1|cond) + (1|model:cond)",
    "y ~ 0 + cond + (1|model)",
    "y ~ 1 + n + (1 + n|model) + (1|cond)",
    "y ~ 1 + flag + (1 + flag || cond) + (1|model)",
])
def test_predictor_layout_reproduces_the_linear_predictor(text):
    """The sparse layout the design-average and PPC kernels use gives linear_predictor's eta, every term kind."""
    from dvbstats.model.design import linear_predictor, predictor_layout, stacked_parameters

    d = design(parse(text), _cells())
    rng = np.random.default_rng(5)
    n = 7
    draws = {"Intercept": rng.normal(size=n)} if d.formula.intercept else {}
    draws |= {f"b_{x}": rng.normal(size=n) for x in d.fixed}
    draws |= {f"r_{t.name}": rng.normal(size=(n, *(len(lv) for lv in t.levels))) for t in d.terms}
    draws |= {f"r_{s.name}": rng.normal(size=(n, len(s.levels), len(s.coefficients))) for s in d.slopes}
    cols, vals = predictor_layout(d)
    theta = stacked_parameters(d, draws)
    eta = np.einsum("icj,cj->ic", theta[:, cols], vals)
    assert np.allclose(eta, linear_predictor(d, draws), rtol=0, atol=1e-12)
