"""The formula grammar: every construct parses to the terms lme4 would read, every misuse is refused."""

import pytest

from dvbstats.model.formula import DEFAULT_FORMULA, FormulaError, RandomTerm, Variable, parse, safe_name, term_label


def _fixed(text: str) -> list[str]:
    return [term_label(t) for t in parse(text).fixed]


def _random(text: str) -> list[str]:
    return [r.label for r in parse(text).random]


def test_default_formula():
    f = parse(DEFAULT_FORMULA)
    assert f.response == "chose_deep"
    assert f.intercept
    assert f.fixed == ((Variable("log_n_train"),),)
    assert [r.label for r in f.random] == ["model", "value", "feature", "context"]
    assert f.variables == ("log_n_train", "model", "value", "feature", "context")


def test_interaction_and_spacing():
    f = parse("chose_deep~1+( 1 | model : value )+(1|model)")
    assert f.random == (RandomTerm(("model", "value")), RandomTerm(("model",)))
    assert f.random[0].label == "model:value"
    assert f.random[0].var_name == "model__value"
    assert f.variables == ("model", "value")


@pytest.mark.parametrize("text, intercept", [("y ~ 0 + x", False), ("y ~ x - 1", False), ("y ~ x", True),
                                             ("y ~ -1 + x", False), ("y ~ 1 + x", True)])
def test_intercept_switches(text, intercept):
    assert parse(text).intercept is intercept


@pytest.mark.parametrize("text, terms", [
    ("y ~ a:b", ["a:b"]),
    ("y ~ a*b", ["a", "b", "a:b"]),
    ("y ~ a*b*c", ["a", "b", "c", "a:b", "a:c", "b:c", "a:b:c"]),
    ("y ~ a:b*c", ["a:b", "c", "a:b:c"]),
    ("y ~ log(x) + log2(x) + scale(x)", ["log(x)", "log2(x)", "scale(x)"]),
    ("y ~ C(n_train) * log(params_b)", ["C(n_train)", "log(params_b)", "C(n_train):log(params_b)"]),
])
def test_fixed_terms(text, terms):
    assert _fixed(text) == terms


def test_factor_codings():
    (ref,), (sum_,), (plain,), (bare,) = parse('y ~ C(x, ref="b c") + C(z, sum) + C(w, ref=4) + C(v)').fixed
    assert ref == Variable("x", factor=True, ref="b c") and ref.label == 'C(x, ref="b c")'
    assert sum_ == Variable("z", factor=True, coding="sum") and sum_.label == "C(z, sum)"
    assert plain.ref == "4" and bare == Variable("v", factor=True)


def test_random_terms():
    f = parse("y ~ x + (1 + x|model) + (0 + x|value) + (1 + x||context) + (x|feature)")
    slope, only, uncorrelated, implicit = f.random
    assert slope.intercept and slope.slopes == ((Variable("x"),),) and slope.correlated
    assert slope.label == "1 + x | model" and slope.var_name == "model__x"
    assert not only.intercept and only.label == "0 + x | value"
    assert not uncorrelated.correlated and uncorrelated.label == "1 + x || context"
    assert implicit.intercept  # (x|g) includes the intercept, as in lme4
    assert not slope.intercept_only and RandomTerm(("g",)).intercept_only


def test_nesting_expands_as_lme4():
    assert parse("y ~ (1|a/b)").random == parse("y ~ (1|a) + (1|a:b)").random
    assert _random("y ~ (1|a/b/c)") == ["a", "a:b", "a:b:c"]
    assert parse("y ~ (1 + x|family/model)").random == parse("y ~ (1 + x|family) + (1 + x|family:model)").random


def test_slope_on_a_factor_and_an_interaction():
    (r,) = parse("y ~ (1 + C(cond, sum) + cond2:x | model)").random
    assert [term_label(s) for s in r.slopes] == ["C(cond, sum)", "cond2:x"]
    assert r.var_name == "model__C_cond_sum__cond2__x"


def test_safe_names():
    assert safe_name("condition[B]:log_n_train") == "condition_B__log_n_train"
    assert safe_name("log(params_b)") == "log_params_b"


@pytest.mark.parametrize(
    "text, message",
    [
        ("chose_deep 1 + (1|model)", "expected '~'"),
        ("y ~ 1 + (1|model", r"expected '\)'"),
        ("y ~ 1 + (1|g) + (1|g)", "intercept in two random terms"),
        ("y ~ (1|g) + (1 + x|g)", "intercept in two random terms"),
        ("y ~ (1 + x|g) + (0 + x|g)", "slope on 'x' by 'g' appears in two"),
        ("y ~ (1|a/b) + (1|a)", "intercept in two random terms"),
        ("y ~ 1 + y", "is also a predictor"),
        ("y ~ x:y", "is also a predictor"),
        ("y ~ 1 + (1|y)", "cannot be a grouping factor"),
        ("chose_deep ~ 1 + (1|chose_deep)", "cannot be a grouping factor"),
        ("y ~ (1 + y|g)", "cannot be a random slope"),
        ("y ~ 1 + $x", "cannot read"),
        ("y ~ 1 +", "expected a term"),
        ("y ~ a + a", "'a' appears twice"),
        ("y ~ a:b + b:a", "'b:a' appears twice"),
        ("y ~ a*b + a", "'a' appears twice"),
        ("y ~ a:a", "repeated in the interaction"),
        ("y ~ a*a", "repeated in the interaction|both sides"),
        ("y ~ 0", "no terms"),
        ("y ~ -1", "no terms"),
        ("y ~ exp(x)", r"unknown function exp\(\)"),
        ("y ~ log(log(x))", "do not nest"),
        ("y ~ C(x, helmert)", "C\\(\\) takes sum, treatment"),
        ("y ~ C(x, sum, ref=a)", "sum coding has no reference"),
        ("y ~ (x + 1)", "needs a grouping factor"),
        ("y ~ (0|g)", "estimates nothing"),
        ("y ~ (1|g:g)", "grouping factor is repeated"),
        ("y ~ 2 + x", "is 0 or 1"),
        ("y ~ x - z", "cannot subtract the term 'z'"),
        ("y ~ x - (1|g)", "cannot subtract a random term"),
        ("y ~ x + ((1|g))", "parentheses only enclose random terms|needs a grouping"),
        ("y ~ x (1|g)", "unknown function x"),
    ],
)
def test_errors_say_what_and_where(text, message):
    with pytest.raises(FormulaError, match=message):
        parse(text)


def test_no_intercept_with_random_terms_parses():
    f = parse("chose_deep ~ 0 + (1|model)")
    assert not f.intercept and f.fixed == () and _random("y ~ 0 + (1|model)") == ["model"]
