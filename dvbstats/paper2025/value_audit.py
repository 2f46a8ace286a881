"""The DVB paper's value audit: do models' own ratings of the values explain their DVGR?

Each of the paper's 9 models rated each of its values on popularity, distinctiveness and
predictiveness (1-10, 10 times). The paper averaged each model's successful ratings per value and
dimension, merged the means onto each trial of that model and value, and fitted
``y ~ predictiveness + distinctiveness + popularity`` (logit, standard errors clustered by
model x value): odds ratios 1.25 (distinctiveness) and 0.86 (popularity), both p < 0.001.

This module replicates that regression on the reconstructed model x value counts
(:func:`replicate_logit`), sets it beside the hierarchical Bayesian version with the ratings as
numeric predictors next to ``(1|model) + (1|value) + (1|model:value)`` (:func:`coefficient_table`
of a :func:`dvbstats.results.fitted.fit`), and decides a verdict by fixed rules (:data:`VERDICT_RULES`).
The ratings vary mostly between values (:func:`variance_shares`), and there are 11 values: once
values have their own random effect, the ratings' effects rest on 11 points.

Only :func:`read_ratings` does I/O; the rest is pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import math

import arviz as az
import numpy as np
import pandas as pd
import polars as pl
import statsmodels.api as sm

from dvbstats.constants import HDI_PROB
from dvbstats.input.cells import CellTable
from dvbstats.input.runfolder import RunFolder
from dvbstats.input.schema import CELL_COUNTS
from dvbstats.model.formula import parse
from dvbstats.model.sample import Diagnostics, SamplerSettings
from dvbstats.report import plots
from dvbstats.report.markdown import callout, fmt_p, md_table
from dvbstats.report.markup import text as escape
from dvbstats.results import mcse
from dvbstats.results.fitted import Fit, fit

RATINGS_FILE = "dvb2025_value_ratings.csv"
DIMENSIONS: tuple[str, ...] = ("predictiveness", "distinctiveness", "popularity")
RATING_RANGE = (1.0, 10.0)
#: The paper's published odds ratios (2 decimals) and its reading of each dimension.
PUBLISHED_ODDS_RATIOS: dict[str, float] = {"distinctiveness": 1.25, "popularity": 0.86}
PUBLISHED_READING: dict[str, str] = {"predictiveness": "n.s.", "distinctiveness": "raises", "popularity": "lowers"}
#: The paper's significance threshold for its two effects (it reported p < 0.001).
PUBLISHED_ALPHA = 0.001
ALPHA = 0.05
#: Replicated odds ratios within this distance of the published ones count as reproduced. The
#: published figures have 2 decimals (rounding +-0.005) and the counts are rebuilt from rounded
#: aggregates, which moves the fitted odds ratios by a few thousandths more.
OR_TOLERANCE = 0.01

#: The section's figure (``sections/figures/value-audit.png`` of the run folder).
FIGURE = "value-audit"

LOGIT_FORMULA = "chose_deep ~ " + " + ".join(DIMENSIONS)
BAYES_FORMULA = "chose_deep ~ 1 + " + " + ".join(DIMENSIONS) + " + (1|model) + (1|value) + (1|model:value)"

REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"
AGREES, NOT_ESTABLISHED, DOES_NOT_HOLD = "agrees", "not established", "does not hold"
CREDIBLE_HERE = "credible here, n.s. in the paper"

VERDICT_RULES: tuple[str, ...] = (
    f"*Replication*: **{REPRODUCED}** when every published odds ratio is matched within {OR_TOLERANCE} by the "
    "cluster-robust logit on the reconstructed counts and each dimension's significance (p < "
    f"{PUBLISHED_ALPHA} for the two published effects, p >= {ALPHA} for predictiveness) is as published; "
    f"**{NOT_REPRODUCED}** otherwise.",
    "*Each dimension (Bayesian)*: for the paper's claimed direction (distinctiveness raises DVGR, popularity "
    f"lowers it), **{AGREES}** when the coefficient's HDI excludes 0 on the claimed side; **{NOT_ESTABLISHED}** "
    f"when the HDI spans 0 and the posterior favours the claimed side (P > 0.5); **{DOES_NOT_HOLD}** otherwise. "
    f"For predictiveness (paper: not significant) **{AGREES}** when the HDI spans 0, **{CREDIBLE_HERE}** otherwise.",
    "*More cautious* marks a dimension significant in the clustered logit (p < 0.05) whose Bayesian HDI spans 0.",
    f"*Borderline* marks a Bayesian verdict that moving an HDI bound or P(slope > 0) by {mcse.K_MCSE:g} Monte "
    "Carlo standard errors would change (from the draws: ArviZ's mean MCSE for P, for an HDI bound ArviZ's quantile "
    "MCSE times the measured factor by which an HDI bound varies more, about 2): another seed could "
    "give the other verdict.",
)


class RatingsError(ValueError):
    """A ratings file that cannot be used; names the file, the row and the problem."""


# --------------------------------------------------------------------------------------- reading


def read_ratings(path: str | Path) -> pl.DataFrame:
    """Read and check the raw ratings: ``model, dimension, value, iteration, rating, success``.

    ``success`` is ``True``/``False``; a successful rating is a number in [1, 10], a failed one is
    empty. Each (model, dimension, value, iteration) appears once. Rows are numbered from 1 after
    the header.
    """
    path = Path(path)
    if not path.is_file():
        raise RatingsError(f"{path}: file not found")
    try:
        raw = pl.read_csv(path, infer_schema=False)
    except pl.exceptions.PolarsError as err:
        raise RatingsError(f"{path}: not a readable CSV ({err})") from None
    columns = ("model", "dimension", "value", "iteration", "rating", "success")
    if missing := [c for c in columns if c not in raw.columns]:
        raise RatingsError(f"{path}: missing column(s) {missing}; found {raw.columns}")
    if raw.height == 0:
        raise RatingsError(f"{path}: no data rows")
    df = raw.select(
        pl.col("model", "dimension", "value").str.strip_chars(),
        iteration=pl.col("iteration").str.strip_chars().cast(pl.Int64, strict=False),
        rating=pl.col("rating").str.strip_chars().cast(pl.Float64, strict=False),
        success=pl.col("success").str.strip_chars().replace_strict({"True": True, "False": False}, default=None),
        _rating_text=pl.col("rating").str.strip_chars().fill_null(""),
    )
    lo, hi = RATING_RANGE
    checks = [
        (pl.col("model").is_null() | (pl.col("model") == ""), "empty model"),
        (~pl.col("dimension").is_in(DIMENSIONS), f"dimension is not one of {', '.join(DIMENSIONS)}"),
        (pl.col("value").is_null() | (pl.col("value") == ""), "empty value"),
        (pl.col("iteration").is_null(), "iteration is not an integer"),
        (pl.col("success").is_null(), "success is not True or False"),
        (pl.col("success") & pl.col("rating").is_null(), "successful rating is not a number"),
        (pl.col("success") & ~pl.col("rating").is_between(lo, hi), f"rating outside [{lo:g}, {hi:g}]"),
        (~pl.col("success") & (pl.col("_rating_text") != ""), "failed rating (success = False) has a rating"),
    ]
    for bad, problem in checks:
        rows = df.select(bad.fill_null(True)).to_series().arg_true()
        if rows.len():
            i = rows[0]
            raise RatingsError(f"{path}, row {i + 1}: {problem}: {raw.row(i, named=True)}")
    key = ["model", "dimension", "value", "iteration"]
    dup = df.select(pl.struct(key).is_duplicated()).to_series().arg_true()
    if dup.len():
        raise RatingsError(f"{path}, row {dup[1] + 1}: duplicate rating {df.select(key).row(dup[1])} "
                           f"(also row {dup[0] + 1})")
    return df.drop("_rating_text")


# ------------------------------------------------------------------------------------ statistics


def mean_ratings(ratings: pl.DataFrame, values: Sequence[str]) -> pl.DataFrame:
    """Per model and benchmark value, the mean successful rating on each dimension (the paper's merge).

    Values not in ``values`` (``reciprocity``) are dropped. Raises :class:`RatingsError` when a
    model x value x dimension has no successful rating.
    """
    ok = ratings.filter(pl.col("success") & pl.col("value").is_in(list(values)))
    means = ok.group_by("model", "value", "dimension").agg(rating=pl.col("rating").mean())
    wide = means.pivot("dimension", index=["model", "value"], values="rating").sort("model", "value")
    expected = ratings.select("model").unique().join(pl.DataFrame({"value": list(values)}), how="cross")
    for dim in DIMENSIONS:
        have = wide.filter(pl.col(dim).is_not_null()).select("model", "value") if dim in wide.columns else None
        missing = expected if have is None else expected.join(have, on=["model", "value"], how="anti")
        if missing.height:
            raise RatingsError(f"no successful {dim} rating for model x value {missing.row(0)}")
    return wide.select("model", "value", *DIMENSIONS)


def with_ratings(cells: pl.DataFrame, means: pl.DataFrame, *, model_column: str = "model_id") -> pl.DataFrame:
    """``cells`` (one row per model x value) with the mean ratings joined on ``model_column`` and value."""
    joined = cells.join(means.rename({"model": model_column}), on=[model_column, "value"], how="left")
    unrated = joined.filter(pl.any_horizontal(pl.col(d).is_null() for d in DIMENSIONS))
    if unrated.height:
        raise RatingsError(f"no ratings for cell {unrated.select(model_column, 'value').row(0)} "
                           f"(rated models: {sorted(means['model'].unique())})")
    return joined


def variance_shares(means: pl.DataFrame) -> pl.DataFrame:
    """Per dimension, the two-way decomposition of the model x value mean ratings (a complete
    model x value table): the shares of their variance between values, between models and in the
    model x value residual, with the number of values.

    A value random effect absorbs everything that is constant within a value, so with it in the
    model a rating's slope is learnt from the model and residual parts, and from how the
    ``n_values`` value means line up with the values' own effects only as far as the value SD allows.
    """
    rows = []
    for dim in DIMENSIONS:
        x = means[dim].to_numpy()
        value_part = means.select(pl.col(dim).mean().over("value")).to_series().to_numpy() - x.mean()
        model_part = means.select(pl.col(dim).mean().over("model")).to_series().to_numpy() - x.mean()
        residual = x - x.mean() - value_part - model_part
        total = float(np.var(x))
        rows.append({"dimension": dim, "between_value_share": float(np.var(value_part)) / total,
                     "between_model_share": float(np.var(model_part)) / total,
                     "residual_share": float(np.var(residual)) / total,
                     "n_values": means["value"].n_unique(), "n_models": means["model"].n_unique()})
    return pl.DataFrame(rows)


def between_values(cells: pl.DataFrame) -> pl.DataFrame:
    """What the values alone can show: OLS of each value's empirical log-odds of a deep choice on its
    mean ratings (one point per value). One row per dimension: slope, 95% CI, p-value, the number
    of values and the residual degrees of freedom."""
    v = cells.group_by("value").agg(pl.col("n_deep", "n_trials").sum(), *(pl.col(d).mean() for d in DIMENSIONS))
    y = (v["n_deep"] / (v["n_trials"] - v["n_deep"])).log().to_numpy()
    res = sm.OLS(y, sm.add_constant(v.select(DIMENSIONS).to_numpy().astype(float))).fit()
    ci = res.conf_int(ALPHA)[1:]
    return pl.DataFrame({"term": list(DIMENSIONS), "coef": res.params[1:], "ci_low": ci[:, 0], "ci_high": ci[:, 1],
                         "p_value": res.pvalues[1:], "n_values": v.height, "df_resid": int(res.df_resid)})


def _expanded(cells: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Trial-level outcome and the row of ``cells`` each trial belongs to."""
    n, k = cells["n_trials"].to_numpy(), cells["n_deep"].to_numpy()
    row = np.repeat(np.arange(cells.height), n)
    within = np.arange(row.size) - np.repeat(np.cumsum(n) - n, n)
    return (within < k[row]).astype(float), row


def replicate_logit(cells: pl.DataFrame, cluster: Sequence[str] = ("model", "value")) -> pl.DataFrame:
    """The paper's logit ``y ~ predictiveness + distinctiveness + popularity`` on the trials of ``cells``.

    ``cells`` has ``n_trials``, ``n_deep``, the rating columns and the ``cluster`` columns. The
    trials are expanded, as the paper fitted them, so that the cluster-robust (CR1) standard
    errors carry the paper's small-sample factor. One row per coefficient: estimate, SE, odds
    ratio with its 95% interval, p-value, the clustering and its number of clusters.
    """
    y, row = _expanded(cells)
    X = sm.add_constant(cells.select(DIMENSIONS).to_numpy().astype(float))
    groups = cells.select(pl.concat_str([pl.col(c).cast(pl.String) for c in cluster], separator=":"))
    group_codes = groups.to_series().cast(pl.Categorical).to_physical().to_numpy()
    res = sm.GLM(y, X[row], family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": group_codes[row]}
    )
    ci = res.conf_int(ALPHA)
    return pl.DataFrame({
        "term": ["Intercept", *DIMENSIONS],
        "coef": res.params, "se": res.bse,
        "odds_ratio": np.exp(res.params), "or_ci_low": np.exp(ci[:, 0]), "or_ci_high": np.exp(ci[:, 1]),
        "p_value": res.pvalues,
        "cluster": " x ".join(cluster), "n_clusters": int(np.unique(group_codes).size), "n_trials": int(y.size),
    })


def coefficient_table(fit: Fit, hdi_prob: float) -> pl.DataFrame:
    """Per rating dimension: posterior mean, SD and HDI of the slope (log-odds per rating point),
    P(slope > 0), the odds ratio at the posterior median with its HDI, and the MCSEs of the HDI bounds
    and of P(slope > 0) (:mod:`dvbstats.results.mcse`)."""
    rows = []
    for dim in DIMENSIONS:
        chains = fit.idata.posterior[f"b_{dim}"].values
        draws = chains.ravel()
        low, high = az.hdi(draws, hdi_prob=hdi_prob)
        low_mcse, high_mcse = mcse.hdi_mcse(chains, hdi_prob)
        rows.append({
            "term": dim, "mean": float(draws.mean()), "sd": float(draws.std(ddof=1)),
            "hdi_low": float(low), "hdi_high": float(high), "p_positive": float((draws > 0).mean()),
            "odds_ratio": float(np.exp(np.median(draws))), "or_hdi_low": float(np.exp(low)),
            "or_hdi_high": float(np.exp(high)), "hdi_low_mcse": low_mcse, "hdi_high_mcse": high_mcse,
            "p_positive_mcse": mcse.probability_mcse(chains > 0),
        })
    return pl.DataFrame(rows)


# --------------------------------------------------------------------------------------- verdict


@dataclass(frozen=True)
class DimensionVerdict:
    term: str
    paper: str
    verdict: str
    more_cautious: bool
    #: :func:`dvbstats.results.mcse.borderline_note` when a bound or P(slope > 0) is within
    #: :data:`~dvbstats.results.mcse.K_MCSE` MCSEs of changing the verdict
    borderline: str | None = None

    def label(self) -> str:
        """The verdict with its borderline note, as the report prints it."""
        return self.verdict + (f" ({self.borderline})" if self.borderline else "")


@dataclass(frozen=True)
class AuditVerdict:
    replication: str
    dimensions: tuple[DimensionVerdict, ...]


def replication_verdict(logit: pl.DataFrame) -> str:
    """:data:`REPRODUCED` when the published odds ratios and significance pattern are matched."""
    by_term = {r["term"]: r for r in logit.iter_rows(named=True)}
    close = all(abs(by_term[t]["odds_ratio"] - v) <= OR_TOLERANCE for t, v in PUBLISHED_ODDS_RATIOS.items())
    significant = all(by_term[t]["p_value"] < PUBLISHED_ALPHA for t in PUBLISHED_ODDS_RATIOS)
    null = all(by_term[t]["p_value"] >= ALPHA for t in DIMENSIONS if t not in PUBLISHED_ODDS_RATIOS)
    return REPRODUCED if close and significant and null else NOT_REPRODUCED


def dimension_rule(reading: str, hdi_low: float, hdi_high: float, p_positive: float) -> str:
    """The rule of :data:`VERDICT_RULES` for one dimension the paper read as ``reading``."""
    spans = hdi_low <= 0 <= hdi_high
    if reading == "n.s.":
        return AGREES if spans else CREDIBLE_HERE
    p_claimed = p_positive if reading == "raises" else 1 - p_positive
    on_side = hdi_low > 0 if reading == "raises" else hdi_high < 0
    return AGREES if on_side else NOT_ESTABLISHED if spans and p_claimed > 0.5 else DOES_NOT_HOLD


def dimension_verdict(
    term: str, hdi_low: float, hdi_high: float, p_positive: float, logit_p: float,
    mcses: Mapping[str, float | None] | None = None,
) -> DimensionVerdict:
    """:func:`dimension_rule` for one dimension, borderline when a number is within
    :data:`~dvbstats.results.mcse.K_MCSE` of its ``mcses`` (keys ``hdi_low``, ``hdi_high``,
    ``p_positive``) from changing it."""
    reading = PUBLISHED_READING[term]
    numbers = {"hdi_low": hdi_low, "hdi_high": hdi_high, "p_positive": p_positive}
    found = mcse.fragile(
        partial(dimension_rule, reading), numbers, mcses or {},
        labels={"hdi_low": "HDI lower bound", "hdi_high": "HDI upper bound", "p_positive": "P(slope > 0)"},
        thresholds={"hdi_low": 0.0, "hdi_high": 0.0, "p_positive": 0.5},
    )
    return DimensionVerdict(term, reading, dimension_rule(reading, **numbers),
                            more_cautious=logit_p < ALPHA and hdi_low <= 0 <= hdi_high,
                            borderline=mcse.borderline_note(found))


def audit_verdict(logit: pl.DataFrame, bayes: pl.DataFrame) -> AuditVerdict:
    """The replication verdict and one Bayesian verdict per dimension (borderline when ``bayes`` has
    the MCSE columns of :func:`coefficient_table`)."""
    p = dict(logit.select("term", "p_value").iter_rows())
    dims = tuple(
        dimension_verdict(r["term"], r["hdi_low"], r["hdi_high"], r["p_positive"], p[r["term"]],
                          {k: r.get(f"{k}_mcse") for k in ("hdi_low", "hdi_high", "p_positive")})
        for r in bayes.iter_rows(named=True)
    )
    return AuditVerdict(replication_verdict(logit), dims)


# --------------------------------------------------------------------------------------- section


def comparison_table(logit: pl.DataFrame, bayes: pl.DataFrame) -> pl.DataFrame:
    """Per dimension: the clustered logit's SE and 95% CI width against the posterior SD and HDI width
    (log-odds per rating point), and their ratio."""
    f = logit.filter(pl.col("term").is_in(DIMENSIONS)).select(
        "term", logit_se="se", logit_ci_width=(pl.col("or_ci_high") / pl.col("or_ci_low")).log()
    )
    b = bayes.select("term", posterior_sd="sd", hdi_width=pl.col("hdi_high") - pl.col("hdi_low"))
    return f.join(b, on="term", maintain_order="left").with_columns(
        width_ratio=pl.col("hdi_width") / pl.col("logit_ci_width")
    )


def _or(x: float, low: float, high: float) -> str:
    return f"{x:.3f} [{low:.3f}, {high:.3f}]"


def section(
    logit: pl.DataFrame, logit_by_value: pl.DataFrame, bayes: pl.DataFrame, shares: pl.DataFrame,
    values_only: pl.DataFrame, *, hdi_prob: float, diagnostics: str,
) -> str:
    """The report section "Value audit" (Quarto markdown); ``diagnostics`` describes the Bayesian fit's
    sampler checks in one sentence."""
    verdict = audit_verdict(logit, bayes)
    pct = f"{hdi_prob:.0%}"
    lg = {r["term"]: r for r in logit.iter_rows(named=True)}
    lv = {r["term"]: r for r in logit_by_value.iter_rows(named=True)}
    by = {r["term"]: r for r in bayes.iter_rows(named=True)}
    v = {d.term: d for d in verdict.dimensions}
    n_values, n_models = int(shares["n_values"][0]), int(shares["n_models"][0])
    rows = pd.DataFrame({
        "Rating": [escape(t) for t in DIMENSIONS],
        "Paper OR": [f"{PUBLISHED_ODDS_RATIOS[t]:.2f}" if t in PUBLISHED_ODDS_RATIOS else "n.s." for t in DIMENSIONS],
        "Logit OR [95% CI], model × value clusters": [
            _or(lg[t]["odds_ratio"], lg[t]["or_ci_low"], lg[t]["or_ci_high"]) for t in DIMENSIONS],
        "p": [fmt_p(lg[t]["p_value"]) for t in DIMENSIONS],
        "p, value clusters": [fmt_p(lv[t]["p_value"]) for t in DIMENSIONS],
        f"Bayesian OR [{pct} HDI]": [_or(by[t]["odds_ratio"], by[t]["or_hdi_low"], by[t]["or_hdi_high"])
                                     for t in DIMENSIONS],
        "Posterior SD": [f"{by[t]['sd']:.3f}" for t in DIMENSIONS],
        "P(slope > 0)": [f"{by[t]['p_positive']:.3f}" for t in DIMENSIONS],
        "Verdict": [f"**{escape(v[t].verdict)}**" + (f" ({escape(v[t].borderline)})" if v[t].borderline else "")
                    for t in DIMENSIONS],
    })
    cmp = {r["term"]: r for r in comparison_table(logit, bayes).iter_rows(named=True)}
    share_text = "; ".join(
        f"{r['dimension']} {r['between_value_share']:.0%} between values, {r['between_model_share']:.0%} between "
        f"models, {r['residual_share']:.0%} model × value" for r in shares.iter_rows(named=True))
    sds = ", ".join(f"{t} {cmp[t]['posterior_sd']:.3f} vs {cmp[t]['logit_se']:.3f}" for t in DIMENSIONS)
    widths = ", ".join(f"{t} {cmp[t]['width_ratio']:.2f}" for t in DIMENSIONS)
    shrink = ", ".join(f"{t} {by[t]['mean']:+.3f} vs {lg[t]['coef']:+.3f}" for t in DIMENSIONS)
    off = [f"{t} {abs(lg[t]['odds_ratio'] - PUBLISHED_ODDS_RATIOS[t]):.4f}" for t in PUBLISHED_ODDS_RATIOS]
    cautious = [d.term for d in verdict.dimensions if d.more_cautious]
    between = ", ".join(f"{r['term']} {r['coef']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
                        for r in values_only.iter_rows(named=True))
    widths_values = (values_only["ci_high"] - values_only["ci_low"]).to_list()
    ratios = [cmp[t]["width_ratio"] for t in DIMENSIONS]
    precision = ("no less precise than the clustered logit" if max(ratios) <= 1 else
                 f"up to {max(ratios):.1f} times as wide as the clustered logit's intervals")
    n_cells = int(lg["Intercept"]["n_clusters"])
    blocks = [
        "# Value audit {#sec-value-audit}",
        f"The paper asked its {n_models} models to rate each value on popularity, distinctiveness and "
        "predictiveness (1–10, 10 times), averaged each model's successful ratings per value, merged the means "
        f"onto that model's trials of the value and fitted `{LOGIT_FORMULA}` by logistic regression with standard "
        "errors clustered by model × value, reporting odds ratios of 1.25 per point of distinctiveness and 0.86 "
        "per point of popularity (both p < 0.001), predictiveness not significant.",
        f"**Replication: {verdict.replication}.** The same regression on the reconstructed model × value counts "
        f"(@sec-reconstruction; {int(lg['Intercept']['n_trials']):,} trials, {n_cells} clusters) gives the odds "
        f"ratios in @tbl-value-audit; distance from the published figures: {', '.join(off)} (tolerance "
        f"{OR_TOLERANCE}: the published odds ratios have 2 decimals and the counts are rebuilt from rounded "
        "aggregates).",
        md_table(rows, caption="The value audit: the paper's odds ratios, the clustered logit on the reconstructed "
                 "counts (p also with value clusters), and the hierarchical Bayesian coefficients "
                 f"(`{BAYES_FORMULA}`; odds ratio at the posterior median).", label="value-audit",
                 align="lrrrrrrrl"),
        f"![Odds ratio per rating point: the paper's published figures (diamonds), the clustered logit on the "
        f"reconstructed counts and the hierarchical Bayesian model.](figures/{FIGURE}.png){{#fig-{FIGURE} "
        'fig-alt="Odds ratios per rating dimension from the paper, the replication and the Bayesian model"}',
        f"**What {n_values} values can show.** The logit has no term for model or value, so every difference "
        "between values and between models in DVGR that happens to line up with the ratings is credited to the "
        "ratings. The hierarchical model gives models and values their own effects; a rating then explains DVGR "
        f"only beyond them, and its between-value part rests on {n_values} value means, which the value effect "
        f"(SD learnt from the same {n_values} values) can absorb. Of the variance of the model × value mean "
        f"ratings: {share_text}. Between values alone ({n_values} value means; least squares of each value's "
        f"log-odds of a deep choice on its mean ratings, {int(values_only['df_resid'][0])} residual degrees of "
        f"freedom) the slopes are {between} (log-odds per rating point, 95% CI): intervals about "
        f"{min(widths_values):.1f}–{max(widths_values):.1f} wide, against published effects of "
        f"{abs(math.log(PUBLISHED_ODDS_RATIOS['popularity'])):.2f}–"
        f"{abs(math.log(PUBLISHED_ODDS_RATIOS['distinctiveness'])):.2f}: {n_values} values cannot settle "
        "a rating effect by themselves.",
        f"The hierarchical posterior is {precision} (posterior SD against clustered SE: {sds}; {pct} HDI width "
        f"over 95% CI width: {widths}); what modelling models and values changes is the estimate itself "
        f"(posterior mean against the logit's, log-odds per rating point: {shrink}). Clustering the logit by "
        f"value alone ({n_values} clusters, too few for reliable cluster-robust errors) gives the p-values in "
        "the table's second p column.",
        diagnostics,
    ]
    if cautious:
        blocks.append(callout(
            "important", "More cautious than the paper",
            f"{', '.join(cautious)}: significant in the clustered logit, but the Bayesian {pct} HDI spans 0 once "
            "values are modelled as a random sample of values.",
        ))
    blocks.append(callout("note", "How the verdicts are decided", "\n".join(f"- {r}" for r in VERDICT_RULES)))
    return "\n\n".join(blocks) + "\n"



# --------------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Audit:
    """Everything the value audit found: the paper's logit (model x value and value clusters), the
    Bayesian coefficients and diagnostics, and the ratings' variance decomposition."""

    logit: pl.DataFrame
    logit_by_value: pl.DataFrame
    bayes: pl.DataFrame
    shares: pl.DataFrame
    values_only: pl.DataFrame
    diagnostics: Diagnostics
    hdi_prob: float

    def diagnostics_sentence(self) -> str:
        d = self.diagnostics.summary()
        if d["ok"]:
            return (f"The Bayesian fit's sampler checks pass (max R-hat {d['max_r_hat']:.3f}, min bulk ESS "
                    f"{d['min_ess_bulk']:.0f}, {d['divergences']} divergences).")
        return "**The Bayesian fit's sampler checks failed**: " + "; ".join(d["failures"]) + "."

    def section(self) -> str:
        return section(self.logit, self.logit_by_value, self.bayes, self.shares, self.values_only,
                       hdi_prob=self.hdi_prob, diagnostics=self.diagnostics_sentence())

    def estimates(self) -> pd.DataFrame:
        """Odds ratios per dimension from the clustered logit (95% CI) and the posterior (HDI), long."""
        pct = f"{self.hdi_prob:.0%}"
        logit = self.logit.filter(pl.col("term").is_in(DIMENSIONS)).select(
            "term", "odds_ratio", low="or_ci_low", high="or_ci_high",
            analysis=pl.lit("logit, model × value clusters (95% CI)"))
        bayes = self.bayes.select("term", "odds_ratio", low="or_hdi_low", high="or_hdi_high",
                                  analysis=pl.lit(f"hierarchical Bayesian ({pct} HDI)"))
        return pl.concat([logit, bayes]).to_pandas()

    def write(self, run: RunFolder) -> None:
        """Tables ``value_audit_logit`` (both clusterings), ``value_audit_bayes``, ``value_audit_shares``,
        ``value_audit_between_values`` and the section's figure ``sections/figures/value-audit.png``."""
        run.add_table("value_audit_logit", pl.concat([self.logit, self.logit_by_value]))
        run.add_table("value_audit_bayes", self.bayes)
        run.add_table("value_audit_shares", self.shares)
        run.add_table("value_audit_between_values", self.values_only)
        with plots.style():
            fig = plots.odds_ratios(self.estimates(), reference=pd.Series(PUBLISHED_ODDS_RATIOS))
        plots.save(fig, run.path / "sections" / "figures" / f"{FIGURE}.png")


def run_audit(
    cells: pl.DataFrame, ratings: pl.DataFrame, *, settings: SamplerSettings, hdi_prob: float = HDI_PROB,
    progress: bool = False,
) -> Audit:
    """The value audit on model x value ``cells`` (``model`` short name, ``model_id``, ``value``,
    ``n_prompts``, ``n_trials``, ``n_deep``) and the raw ``ratings`` (:func:`read_ratings`)."""
    means = mean_ratings(ratings, cells["value"].unique().sort().to_list())
    rated = with_ratings(cells, means)
    table = CellTable(rated.select("model", "value", *DIMENSIONS, *CELL_COUNTS), ("model", "value"))
    result = fit(parse(BAYES_FORMULA), table, settings=settings, progress=progress)
    return Audit(
        logit=replicate_logit(rated), logit_by_value=replicate_logit(rated, cluster=("value",)),
        bayes=coefficient_table(result, hdi_prob), shares=variance_shares(means), values_only=between_values(rated),
        diagnostics=result.diagnostics, hdi_prob=hdi_prob,
    )
