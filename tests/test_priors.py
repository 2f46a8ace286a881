import pytest

from dvbstats.priors import DEFAULTS, Prior, PriorError, Priors


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
