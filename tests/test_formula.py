import pytest

from dvbstats.formula import DEFAULT_FORMULA, FormulaError, RandomIntercept, parse


def test_default_formula():
    f = parse(DEFAULT_FORMULA)
    assert f.response == "chose_deep"
    assert f.intercept
    assert f.fixed == ("log_n_train",)
    assert [r.label for r in f.random] == ["model", "value", "feature", "context"]
    assert f.variables == ("log_n_train", "model", "value", "feature", "context")


def test_interaction_and_spacing():
    f = parse("chose_deep~1+( 1 | model : value )+(1|model)")
    assert f.random == (RandomIntercept(("model", "value")), RandomIntercept(("model",)))
    assert f.random[0].label == "model:value"
    assert f.random[0].var_name == "model__value"
    assert f.variables == ("model", "value")


@pytest.mark.parametrize("text, intercept", [("y ~ 0 + x", False), ("y ~ x - 1", False), ("y ~ x", True)])
def test_intercept_switches(text, intercept):
    assert parse(text).intercept is intercept


@pytest.mark.parametrize(
    "text, message",
    [
        ("chose_deep 1 + (1|model)", "expected '~'"),
        ("y ~ 1 + (x|model)", "only random intercepts"),
        ("y ~ 1 + (1|model", r"expected '\)'"),
        ("y ~ 1 + a:b", "fixed interactions are not supported"),
        ("y ~ 1 + (1|g) + (1|g)", "appears twice"),
        ("y ~ 1 + y", "is also a predictor"),
        ("y ~ 1 + $x", "cannot read"),
        ("y ~ 1 +", "expected a term"),
    ],
)
def test_errors_say_what_and_where(text, message):
    with pytest.raises(FormulaError, match=message):
        parse(text)
