import pytest

from dvbstats.model.priors import DEFAULTS, Prior, PriorError, Priors


def test_defaults_and_overrides():
    p = Priors.from_specs(["sd=exponential(2)", "sd_value=halfnormal(0.5)", "b_log_n_train=normal(0, 0.25)"])
    assert p.get("intercept") == DEFAULTS["intercept"]
    assert str(p.get("sd_model")) == "exponential(2)"  # class override
    assert str(p.get("sd_value")) == "halfnormal(0.5)"  # name beats class
    assert str(p.get("b_log_n_train")) == "normal(0, 0.25)"
    assert p.describe(["intercept", "sd_model"]) == {"intercept": "normal(0, 1.5)", "sd_model": "exponential(2)"}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("sd", "expected NAME=DIST"),
        ("sd=gamma(2, 1)", "expected one of"),
        ("sd=normal(0, 1)", "positive distribution"),
        ("intercept=normal(0)", "takes"),
        ("intercept=normal(a, 1)", "must be numbers"),
        ("slope=normal(0, 1)", "the name must be"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(PriorError, match=message):
        Priors.from_specs([spec])


def test_unknown_parameter_is_refused():
    with pytest.raises(PriorError, match="sd_valeu"):
        Priors.from_specs(["sd_valeu=halfnormal(1)"]).check(["intercept", "sd_value"])


def test_prior_parse_roundtrip():
    assert Prior.parse("student_t(3, 0, 2.5)") == Prior("student_t", (3.0, 0.0, 2.5))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("sd=halfnormal(-1)", r"sigma of halfnormal must be a positive number, not -1"),
        ("sd=halfnormal(0)", "sigma of halfnormal must be a positive"),
        ("intercept=normal(0, -2)", "sigma of normal must be a positive"),
        ("b=student_t(0, 0, 1)", "nu of student_t must be a positive"),
        ("sd=exponential(inf)", "lam of exponential must be a positive"),
        ("b=normal(nan, 1)", "mu of normal must be a finite"),
        ("cor=lkj(0)", "eta of lkj must be a positive"),
        ("cor=normal(0, 1)", "correlations take lkj"),
        ("b=lkj(2)", "needs a distribution on the real line"),
        ("sd_model=lkj(2)", "positive distribution"),
    ],
)
def test_parameters_are_validated_when_read(spec, message):
    with pytest.raises(PriorError, match=message):
        Priors.from_specs([spec])


def test_new_classes_have_defaults():
    p = Priors.from_specs(["cor_model__x=lkj(4)"])
    assert str(p.get("cor_model__x")) == "lkj(4)" and str(p.get("cor_value__x")) == "lkj(2)"
    assert str(p.get("sd_model__x")) == "halfnormal(1)" and str(p.get("b_condition_B")) == "normal(0, 1)"
