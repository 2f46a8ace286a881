"""The claims' verdict rules of ``dvbstats.paper2025.claims`` at their thresholds.

Each rule is reached from both sides of its cut-off (the credibility threshold, chance, the rounding
interval of the paper's figure, zero for the slope, P(slope < 0) = 1/2, BF01 = 1/3) by hand-built run
tables (``test_reanalysis``'s builders), so that moving a threshold or flipping a comparison fails here.
"""

from __future__ import annotations

import pytest

from dvbstats.constants import CHANCE, CREDIBLE
from dvbstats.paper2025 import claims as pb
from test_reanalysis import MODELS, _dvgr, _interaction, _pairs, _trend, agg, tables  # noqa: F401  (agg: fixture)

EPS = 1e-3


@pytest.mark.parametrize(("p_below", "verdict"), [
    (CREDIBLE + EPS, pb.AGREES),  # every model credibly below chance
    ([CREDIBLE + EPS] * (len(MODELS) - 1) + [CREDIBLE - EPS], pb.PARTLY),  # one model just short
    ([CREDIBLE - EPS] * len(MODELS), pb.DOES_NOT_HOLD),  # none credibly below
])
def test_below_chance_turns_on_the_credibility_threshold(agg, p_below, verdict):
    assert pb.below_chance_claim(tables(agg, dvgr=_dvgr(p_below=p_below)), agg).verdict == verdict


@pytest.mark.parametrize(("pop_high", "verdict"), [
    (CHANCE - EPS, pb.AGREES),  # a new value's HDI stays below chance
    (CHANCE, pb.AGREES_CAUTIOUS),  # reaching chance is enough for the caution
])
def test_below_chance_is_cautious_when_a_new_value_reaches_chance(agg, pop_high, verdict):
    claim = pb.below_chance_claim(tables(agg, dvgr=_dvgr(p_below=0.999, pop_high=pop_high)), agg)
    assert claim.verdict == verdict


@pytest.mark.parametrize(("cell_low", "verdict"), [(CHANCE, pb.AGREES), (CHANCE + EPS, pb.AGREES_CAUTIOUS)])
def test_below_chance_is_cautious_when_a_cell_is_credibly_above_chance(agg, cell_low, verdict):
    cells = _interaction(0)
    cells = cells.with_columns(dvgr_hdi_low=cells["dvgr_hdi_low"].scatter(0, cell_low),
                               dvgr_hdi_high=cells["dvgr_hdi_high"].scatter(0, cell_low + 0.02))
    claim = pb.below_chance_claim(tables(agg, dvgr=_dvgr(p_below=0.999), interaction=cells), agg)
    assert claim.verdict == verdict


@pytest.mark.parametrize(("overall", "verdict"), [
    ((0.3049, 0.2951, 0.3049), pb.AGREES),  # mean and HDI inside the rounding interval [0.295, 0.305] of 0.30
    ((0.3049, 0.2951, 0.3051), pb.AGREES_CAUTIOUS),  # the HDI just leaves it above
    ((0.2951, 0.2949, 0.3049), pb.AGREES_CAUTIOUS),  # or below
    ((0.3051, 0.3049, 0.3100), pb.WITHIN_UNCERTAINTY),  # the mean just leaves it, the HDI overlaps it
    ((0.3101, 0.3051, 0.3150), pb.DOES_NOT_HOLD),  # the HDI just misses it
])
def test_mean_dvgr_turns_on_the_rounding_interval(agg, overall, verdict):
    assert round(agg.overall.dvgr, 2) == 0.30  # the interval the cases are built around
    assert pb.mean_dvgr_claim(tables(agg, dvgr=_dvgr(overall=overall)), agg).verdict == verdict


@pytest.mark.parametrize(("trend", "verdict"), [
    ((-0.3, -EPS, 0.999, 0.05), pb.AGREES),  # the HDI just below 0
    ((-0.3, +EPS, 0.5 + EPS, 0.05), pb.NOT_ESTABLISHED),  # just spans 0, P(slope < 0) just above 1/2
    ((-0.3, +EPS, 0.5, 0.05), pb.DOES_NOT_HOLD),  # spans 0, P(slope < 0) at 1/2
    ((EPS, 0.3, 0.001, 0.05), pb.DOES_NOT_HOLD),  # above 0
])
def test_scaling_turns_on_the_slope_interval_and_its_direction(agg, trend, verdict):
    pairs = _pairs(agg, [CREDIBLE + EPS] * 5)  # every pair credibly lower: no pair caution
    assert pb.scaling_claim(tables(agg, trend=_trend(*trend), pairs=pairs), agg).verdict == verdict


@pytest.mark.parametrize(("bf01", "verdict"), [
    (1 / pb.BF_MODERATE - EPS, pb.AGREES),  # moderate evidence for a slope
    (1 / pb.BF_MODERATE + EPS, pb.AGREES_CAUTIOUS),  # not quite
])
def test_scaling_is_cautious_when_the_bayes_factor_is_weak(agg, bf01, verdict):
    pairs = _pairs(agg, [CREDIBLE + EPS] * 5)  # every pair credibly lower: no pair caution
    claim = pb.scaling_claim(tables(agg, trend=_trend(-0.3, -0.1, 0.999, bf01), pairs=pairs), agg)
    assert claim.verdict == verdict


@pytest.mark.parametrize(("p_diff_below_0", "reading"), [
    (CREDIBLE + EPS, "larger credibly lower"),
    (CREDIBLE - EPS, "no credible difference"),
    (1 - CREDIBLE + EPS, "no credible difference"),
    (1 - CREDIBLE - EPS, "larger credibly higher"),
])
def test_pair_reading_turns_on_the_credibility_threshold(agg, p_diff_below_0, reading):
    table = pb.pair_table(tables(agg, pairs=_pairs(agg, [p_diff_below_0] * 5)), agg)
    assert set(table["bayes_reading"]) == {reading}
