"""Tests of the published reanalysis: the script end to end on the reconstruction, and the
claims-vs-reanalysis rules of ``dvbstats.paper2025.claims`` on hand-built run tables.

The end-to-end test fits once (module fixture, small sampler settings) and checks the run against the
published figures themselves: per-model raw DVGR to 4 decimals and the overall 0.3024. The rule tests
build ``dvgr``/``scaling`` tables by hand so that each verdict branch is reached by numbers we chose;
the paper's side is checked against scipy computed directly on the published counts.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from dvbstats.input.runfolder import RunFolder
from dvbstats.paper2025 import claims as pb
from dvbstats.paper2025.reconstruct import DEFAULT_ROOT, published_aggregates, reconstruct

REPO = Path(__file__).resolve().parents[1]
ROOT = DEFAULT_ROOT
SCRIPT = REPO / "dvbstats/paper2025/reanalysis.py"


def _script():
    spec = importlib.util.spec_from_file_location("dvb2025_reanalysis", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def agg():
    return published_aggregates(ROOT)


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def reanalysis(tmp_path_factory) -> tuple[Path, Path]:
    """One quick reanalysis (2 chains x 300 draws), rendered; returns (run folder, report folder)."""
    tmp = tmp_path_factory.mktemp("reanalysis")
    script = _script()
    run_dir = script.reanalyse(
        root=ROOT, processed=tmp / "processed", out=tmp / "run", reports=tmp / "reports",
        log=lambda _: None, **script.QUICK,
    )
    return run_dir, tmp / "reports" / script.NAME


def test_reproduces_published_per_model_raw_dvgr(reanalysis, agg):
    dvgr = pl.read_csv(reanalysis[0] / "dvgr.csv")
    paper = agg.models.select(model="short_name", paper=pl.col("n_chose_deep") / pl.col("n_trials_parsed"))
    joined = paper.join(dvgr.select("model", "raw_dvgr", "n_used"), on="model", how="left")
    assert joined["raw_dvgr"].null_count() == 0
    np.testing.assert_array_equal(joined["raw_dvgr"].round(4), joined["paper"].round(4))
    assert joined["n_used"].to_list() == agg.models["n_trials_parsed"].to_list()


def test_reproduces_published_overall_dvgr(reanalysis):
    overall = pl.read_csv(reanalysis[0] / "dvgr.csv").filter(pl.col("model") == "overall").row(0, named=True)
    assert round(overall["raw_dvgr"], 4) == 0.3024
    assert overall["n_used"] == 104_725
    assert overall["dvgr_hdi_low"] < overall["dvgr_mean"] < overall["dvgr_hdi_high"]


def test_run_uses_the_papers_model_and_pairs(reanalysis, agg):
    run_dir = reanalysis[0]
    tables = pb.RunTables.read(run_dir)
    assert tables.formula.replace(" ", "") == "chose_deep~1+(1|model)+(1|value)+(1|model:value)"
    pairs = pl.read_csv(run_dir / "scaling_pairs.csv").select("smaller", "larger").rows()
    assert pairs == pb.paper_pairs(agg)
    assert pl.read_csv(run_dir / "scaling_big_small.csv").height == 2  # both big/small codings


def test_outputs_sections_claims_and_report(reanalysis):
    run_dir, report_dir = reanalysis
    claims = pl.read_csv(run_dir / "published_vs_reanalysis.csv")
    assert claims["claim"].to_list() == ["Mean DVGR 0.30", "All models below chance", "Larger models slightly lower"]
    residuals = pl.read_csv(run_dir / "reconstruction_residuals.csv")
    assert residuals.filter(pl.col("table") == "heatmap").height == 99
    sections = sorted(p.name for p in (run_dir / "sections").glob("*.md"))
    assert sections == ["00_findings.md", "01_published_vs_reanalysis.md", "02_reconstruction.md", "03_value_audit.md"]
    html = (report_dir / "report.html").read_text(encoding="utf-8")
    assert "Published vs reanalysis" in html and "Reconstruction of the model" in html and "Value audit" in html
    assert (report_dir / "figures" / "value-audit.png").is_file()
    logit = pl.read_csv(run_dir / "value_audit_logit.csv")
    assert logit["cluster"].unique().sort().to_list() == ["model x value", "value"]
    assert pl.read_csv(run_dir / "value_audit_bayes.csv")["term"].to_list() == ["predictiveness", "distinctiveness",
                                                                              "popularity"]
    assert (report_dir / "report.html").stat().st_size < 5 * 2**20


@pytest.mark.parametrize("width", [80, 100, 160])
def test_console_summary_fits_the_terminal(reanalysis, width):
    """The closing console output stays within the terminal's width and names every claim with its verdict."""
    run_dir, _ = reanalysis
    text = _script().console_summary(RunFolder.read(run_dir), width)
    assert max(len(line) for line in text.splitlines()) <= width
    claims = pl.read_csv(run_dir / "published_vs_reanalysis.csv")
    for claim, verdict in zip(claims["claim"], claims["verdict"], strict=True):
        assert f"- {claim}: {verdict}" in text
    assert "gpt-4o-mini" in text and "DVGR" in text


# --------------------------------------------------------------------------- hand-built run tables

MODELS = [
    "gemini-2.0-flash", "gemini-2.0-flash-lite", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano",
    "gpt-4o", "gpt-4o-mini", "llama-3-70b", "llama-3-8b",
]


def _dvgr(p_below: float | list[float] = 1.0, pop_high: float = 0.45, overall=(0.301, 0.298, 0.304)) -> pl.DataFrame:
    p = [p_below] * len(MODELS) if np.isscalar(p_below) else p_below
    rates = np.linspace(0.23, 0.40, len(MODELS))
    models = pl.DataFrame({
        "model": MODELS, "n_used": [11_000] * len(MODELS), "raw_dvgr": rates, "dvgr_mean": rates,
        "dvgr_hdi_low": rates - 0.01, "dvgr_hdi_high": rates + 0.01, "p_below_half": p,
        "pop_dvgr_hdi_low": rates - 0.2, "pop_dvgr_hdi_high": [pop_high] * len(MODELS),
    })
    mean, low, high = overall
    total = pl.DataFrame({
        "model": ["overall"], "n_used": [99_000], "raw_dvgr": [mean], "dvgr_mean": [mean], "dvgr_hdi_low": [low],
        "dvgr_hdi_high": [high], "p_below_half": [1.0], "pop_dvgr_hdi_low": [None], "pop_dvgr_hdi_high": [None],
    }, schema=models.schema)
    return pl.concat([models, total])


def _pairs(agg, p_below: list[float] | None = None) -> pl.DataFrame:
    pairs = pb.paper_pairs(agg)
    p = p_below or [0.0, 1.0, 0.0, 1.0, 1.0]  # the real readings: larger higher, lower, higher, lower, lower
    return pl.DataFrame({
        "smaller": [a for a, _ in pairs], "larger": [b for _, b in pairs],
        "dvgr_smaller": 0.3, "dvgr_larger": 0.3, "diff_mean": [0.5 - q for q in p],
        "diff_hdi_low": -0.05, "diff_hdi_high": 0.05, "p_diff_below_0": p,
    })


def _trend(low: float, high: float, p_below: float, bf01: float) -> pl.DataFrame:
    return pl.DataFrame({"slope_mean": [(low + high) / 2], "slope_hdi_low": [low], "slope_hdi_high": [high],
                         "p_slope_below_0": [p_below], "bf01": [bf01], "size_measure": ["rank"],
                         "n_models": [9], "n_families": [4]})


def _big_small() -> pl.DataFrame:
    return pl.DataFrame({"coding": list(pb.PAPER_CODINGS), "dvgr_big": 0.28, "dvgr_small": 0.31,
                         "diff_mean": -0.03, "diff_hdi_low": -0.035, "diff_hdi_high": -0.025, "p_diff_below_0": 1.0})


def _interaction(above: int = 0) -> pl.DataFrame:
    n = 99
    high = np.full(n, 0.45)
    high[:above] = 0.62
    return pl.DataFrame({"model": [MODELS[i % 9] for i in range(n)], "value": [f"v{i // 9}" for i in range(n)],
                         "dvgr_mean": high - 0.02, "dvgr_hdi_low": high - 0.04, "dvgr_hdi_high": high})


def tables(agg, *, dvgr=None, pairs=None, trend=None, interaction=None, pooled_logit=None) -> pb.RunTables:
    return pb.RunTables(
        dvgr=_dvgr() if dvgr is None else dvgr,
        pairs=_pairs(agg) if pairs is None else pairs,
        trend=_trend(-0.3, -0.1, 0.999, 0.05) if trend is None else trend,
        big_small=_big_small(),
        interaction=_interaction() if interaction is None else interaction,
        pooled_logit=pooled_logit,
        hdi_prob=0.94,
        formula="chose_deep ~ 1 + (1|model)",
    )


@pytest.mark.parametrize(
    ("overall", "verdict"),
    [
        ((0.301, 0.298, 0.304), pb.AGREES),
        ((0.301, 0.290, 0.312), pb.AGREES_CAUTIOUS),
        ((0.310, 0.290, 0.330), pb.WITHIN_UNCERTAINTY),
        ((0.410, 0.400, 0.420), pb.DOES_NOT_HOLD),
    ],
)
def test_mean_dvgr_verdicts(agg, overall, verdict):
    claim = pb.mean_dvgr_claim(tables(agg, dvgr=_dvgr(overall=overall)), agg)
    assert claim.verdict == verdict
    assert claim.more_cautious == (verdict == pb.AGREES_CAUTIOUS)
    assert "0.3024" in claim.paper


@pytest.mark.parametrize(
    ("p_below", "pop_high", "above", "verdict"),
    [
        (0.999, 0.45, 0, pb.AGREES),
        (0.999, 0.45, 3, pb.AGREES_CAUTIOUS),  # a model x value cell credibly above chance
        (0.999, 0.55, 0, pb.AGREES_CAUTIOUS),  # a new value could reach chance
        ([0.99] * 5 + [0.9] * 4, 0.45, 0, pb.PARTLY),
        (0.6, 0.45, 0, pb.DOES_NOT_HOLD),
    ],
)
def test_below_chance_verdicts(agg, p_below, pop_high, above, verdict):
    t = tables(agg, dvgr=_dvgr(p_below=p_below, pop_high=pop_high), interaction=_interaction(above))
    claim = pb.below_chance_claim(t, agg)
    assert claim.verdict == verdict
    credible = int(np.sum(np.broadcast_to(p_below, len(MODELS)) > pb.CREDIBLE))
    assert claim.reanalysis.startswith(f"{credible} of 9")
    # the paper's side comes from its exact counts: all nine far below 0.5
    assert claim.paper.startswith("9 of 9 models below 0.5")


@pytest.mark.parametrize(
    ("trend", "verdict", "cautious"),
    [
        ((-0.3, -0.1, 0.999, 0.05), pb.AGREES, False),
        ((-0.3, -0.01, 0.98, 1.0), pb.AGREES_CAUTIOUS, True),  # HDI below 0 but BF near 1
        ((-0.3, -0.1, 0.999, 0.4), pb.AGREES_CAUTIOUS, True),  # BF01 above 1/3: not evidence for a slope
        ((-0.35, 0.11, 0.88, 3.6), pb.NOT_ESTABLISHED, True),  # the paper's pooled chi-square is significant
        ((-0.11, 0.35, 0.12, 3.6), pb.DOES_NOT_HOLD, True),
        ((0.1, 0.3, 0.001, 0.05), pb.DOES_NOT_HOLD, False),
    ],
)
def test_scaling_verdicts(agg, trend, verdict, cautious):
    claim = pb.scaling_claim(tables(agg, trend=_trend(*trend)), agg)
    assert claim.verdict == verdict
    assert claim.more_cautious == cautious
    assert (claim.caution is not None and "more cautious than the paper's tests" in claim.caution) == cautious


@pytest.mark.parametrize(("high_mcse", "borderline"), [(0.004, True), (0.001, False)])
def test_scaling_verdict_near_zero_is_borderline(agg, high_mcse, borderline):
    """A slope HDI ending at 0.006: with MCSE 0.004 a rerun can end it below 0 (not established -> agrees)."""
    trend = _trend(-0.3, 0.006, 0.97, 0.2).with_columns(
        slope_hdi_low_mcse=pl.lit(0.004), slope_hdi_high_mcse=pl.lit(high_mcse), p_slope_below_0_mcse=pl.lit(0.003))
    claim = pb.scaling_claim(tables(agg, trend=trend), agg)
    assert claim.verdict == pb.NOT_ESTABLISHED
    assert (claim.borderline is not None) == borderline
    row = pb.claims_table([claim]).row(0, named=True)
    assert row["verdict"] == pb.NOT_ESTABLISHED and row["borderline"] == claim.borderline
    md = pb.section(tables(agg, trend=trend), agg)
    assert ("## Larger models slightly lower: not established (borderline)" in md) == borderline
    if borderline:
        assert "slope HDI upper bound 0.006, MCSE 0.004 (threshold 0)" in claim.borderline


def test_pair_probability_near_credible_makes_the_verdict_borderline(agg):
    """Under an HDI below 0 a pair significant by chi-square at P(diff < 0) = 0.955 +- 0.004 decides between
    agrees and agrees, more cautious."""
    p = [0.0, 1.0, 0.955, 1.0, 1.0]
    pairs = _pairs(agg, p).with_columns(p_diff_below_0_mcse=pl.Series([0.0, 0.0, 0.004, 0.0, 0.0]))
    claim = pb.scaling_claim(tables(agg, pairs=pairs, trend=_trend(-0.3, -0.1, 0.999, 0.05)), agg)
    assert claim.verdict == pb.AGREES
    assert "P(difference < 0) of gpt-4.1-mini vs gpt-4.1 0.955, MCSE 0.004" in claim.borderline


def test_below_chance_and_mean_verdicts_use_the_tables_ess(agg):
    """P(DVGR < 0.5) = 0.96 with bulk ESS 400 has MCSE 0.0098: within 2 MCSE of 0.95; with ESS 40000, 0.00098."""
    for ess, borderline in ((400.0, True), (40_000.0, False)):
        dvgr = _dvgr(p_below=[0.999] * 8 + [0.96]).with_columns(ess_bulk=pl.lit(ess), ess_tail=pl.lit(ess))
        claim = pb.below_chance_claim(tables(agg, dvgr=dvgr), agg)
        assert claim.verdict == pb.AGREES
        assert (claim.borderline is not None) == borderline
    # the overall HDI's lower end 0.2952 is 0.0002 inside the rounding interval of 0.30 (0.295)
    for ess, borderline in ((400.0, True), (1e6, False)):
        dvgr = _dvgr(overall=(0.301, 0.2952, 0.304)).with_columns(ess_bulk=pl.lit(ess), ess_tail=pl.lit(ess))
        claim = pb.mean_dvgr_claim(tables(agg, dvgr=dvgr), agg)
        assert claim.verdict == pb.AGREES
        assert (claim.borderline is not None) == borderline
    # tables without ESS columns (older run folders) are taken as exact
    assert pb.mean_dvgr_claim(tables(agg, dvgr=_dvgr(overall=(0.301, 0.2952, 0.304))), agg).borderline is None


def test_pair_significant_by_chi_square_but_not_credible_is_a_caution(agg):
    t = tables(agg, pairs=_pairs(agg, [0.0, 1.0, 0.5, 1.0, 1.0]), trend=_trend(-0.3, -0.1, 0.999, 0.05))
    claim = pb.scaling_claim(t, agg)
    assert claim.verdict == pb.AGREES_CAUTIOUS
    assert "gpt-4.1-mini vs gpt-4.1" in claim.caution


def test_pooled_logit_caution_only_when_slope_spans_zero(agg):
    logit = pl.DataFrame({"coef": [-0.13], "p_value": [0.019], "ci_low": [-0.24], "ci_high": [-0.02],
                          "n_clusters": [9]})
    spans = pb.scaling_claim(tables(agg, trend=_trend(-0.35, 0.11, 0.88, 3.6), pooled_logit=logit), agg)
    below = pb.scaling_claim(tables(agg, trend=_trend(-0.3, -0.1, 0.999, 0.05), pooled_logit=logit), agg)
    assert "cluster-robust pooled logit is significant" in spans.caution
    assert below.caution is None


def test_pair_readings_and_paper_chi_square(agg):
    table = pb.pair_table(tables(agg, pairs=_pairs(agg, [0.99, 0.01, 0.5, 0.96, 0.04])), agg)
    assert table["bayes_reading"].to_list() == [
        "larger credibly lower", "larger credibly higher", "no credible difference",
        "larger credibly lower", "larger credibly higher",
    ]
    counts = {r["short_name"]: (r["n_chose_deep"], r["n_trials_parsed"]) for r in agg.models.iter_rows(named=True)}
    for row in table.iter_rows(named=True):
        (k1, n1), (k2, n2) = counts[row["smaller"]], counts[row["larger"]]
        expected = stats.chi2_contingency([[k1, n1 - k1], [k2, n2 - k2]])
        assert row["chi2"] == pytest.approx(expected.statistic)
        assert row["chi2_p"] == pytest.approx(expected.pvalue)


def test_big_small_chi_square_matches_scipy(agg):
    table = pb.big_small_table(tables(agg), agg)
    m = agg.models
    for row in table.iter_rows(named=True):
        big = m["short_name"].is_in(sorted(pb.PAPER_CODINGS[row["coding"]]))
        kb, nb = m.filter(big)["n_chose_deep"].sum(), m.filter(big)["n_trials_parsed"].sum()
        ks, ns = m.filter(~big)["n_chose_deep"].sum(), m.filter(~big)["n_trials_parsed"].sum()
        expected = stats.chi2_contingency([[kb, nb - kb], [ks, ns - ks]])
        assert row["chi2_p"] == pytest.approx(expected.pvalue)
        assert row["raw_big"] == pytest.approx(kb / nb)


def test_other_pairs_are_refused(agg):
    wrong = _pairs(agg).with_columns(larger=pl.col("larger").reverse())
    with pytest.raises(pb.ComparisonError, match="not the paper's pairs"):
        pb.pair_table(tables(agg, pairs=wrong), agg)


def test_missing_column_and_file_are_named(agg, tmp_path):
    with pytest.raises(pb.ComparisonError, match="dvgr.csv lacks column"):
        tables(agg, dvgr=_dvgr().drop("p_below_half"))
    with pytest.raises(pb.ComparisonError, match="manifest.json: not found"):
        pb.RunTables.read(tmp_path)


def test_section_markdown(agg):
    text = pb.section(tables(agg, trend=_trend(-0.35, 0.11, 0.88, 3.6)), agg)
    assert text.startswith("# Published vs reanalysis {#sec-published-vs-reanalysis}")
    assert "{#tbl-claims}" in text and "{#tbl-published-pairs}" in text and "::: {.callout-note}" in text
    assert f"## Larger models slightly lower: {pb.NOT_ESTABLISHED}" in text
    assert "::: {.callout-important}\n## More cautious than the paper" in text
    claims_rows = [line for line in text.splitlines() if line.startswith("| ") and "**" in line]
    assert len(claims_rows) == 3


def test_reconstruction_section_lists_figures_outside_precision(agg):
    rec = reconstruct(agg)
    clean = pb.reconstruction_section(rec.method, rec.residuals)
    n_checked = rec.residuals["within_precision"].is_not_null().sum()
    assert f"All {n_checked} checkable published figures are reproduced" in clean
    broken = rec.residuals.with_columns(
        within_precision=pl.when((pl.col("table") == "value") & (pl.col("key") == "tradition")
                                 & (pl.col("statistic") == "dvgr")).then(False).otherwise(pl.col("within_precision"))
    )
    text = pb.reconstruction_section(rec.method, broken)
    assert f"{n_checked - 1} of {n_checked} checkable" in text and "value tradition dvgr" in text
