"""Published vs reanalysis: the DVB paper's headline claims set against a Bayesian reanalysis.

The paper (Ashkinaze et al., NeurIPS 2025) states three headline results: a mean DVGR of 0.30,
every model below chance, and larger models slightly lower. This module takes a finished run's
tables (``dvgr.csv``, ``interaction_dvgr.csv``, ``scaling_*.csv``) and the published aggregates
and returns, per claim, the paper's evidence, the reanalysis' finding and a verdict. Verdicts are
decided by fixed rules on the numbers (:data:`VERDICT_RULES`), never written by hand. The paper's
side is recomputed from the published aggregates alone (its exact per-model counts give its
binomial and chi-square tests); the reanalysis' side comes only from the run's tables.

Everything except :meth:`RunTables.read` is pure; :func:`section` and
:func:`reconstruction_section` return the report's Quarto markdown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from dvbstats.constants import CHANCE, CREDIBLE
from dvbstats.input.runfolder import RunFolder, RunFolderError
from dvbstats.paper2025.reconstruct import PublishedAggregates, summarise_residuals
from dvbstats.report.markdown import callout, fmt_p, md_table
from dvbstats.report.markup import text as escape
from dvbstats.results import mcse
from dvbstats.results.frequentist import FEW_CLUSTERS, binom_test, chi2_2x2
from dvbstats.benchmarks.dvb import PAPER_CODINGS
from dvbstats.results.scaling import frequentist_pairs

#: The paper's significance level.
ALPHA = 0.05
#: Bayes factors between 1/BF_MODERATE and BF_MODERATE are "inconclusive" (Jeffreys 1961, as
#: labelled by Lee & Wagenmakers 2013: below 3 is anecdotal evidence).
BF_MODERATE = 3.0

AGREES = "agrees"
AGREES_CAUTIOUS = "agrees, more cautious"
WITHIN_UNCERTAINTY = "agrees within uncertainty"
PARTLY = "partly holds"
NOT_ESTABLISHED = "not established"
DOES_NOT_HOLD = "does not hold"

#: The rules behind every verdict, as printed in the report.
VERDICT_RULES: tuple[str, ...] = (
    f"*Mean DVGR*: **{AGREES}** when the posterior mean rounds to the paper's figure and the HDI lies inside "
    f"that figure's rounding interval; **{AGREES_CAUTIOUS}** when the mean rounds to it but the HDI is wider; "
    f"**{WITHIN_UNCERTAINTY}** when the mean does not round to it but the HDI overlaps the interval; "
    f"**{DOES_NOT_HOLD}** otherwise.",
    f"*All models below chance*: a model is credibly below chance when P(DVGR < 0.5) > {CREDIBLE}. "
    f"**{AGREES}** when every model is; **{AGREES_CAUTIOUS}** when every model is but some model × value cell "
    "has its HDI above 0.5 or some model's population DVGR (a new value) has an HDI reaching 0.5; "
    f"**{PARTLY}** when some but not all models are; **{DOES_NOT_HOLD}** when none is.",
    f"*Larger models slightly lower*: judged on the pooled within-family size slope. **{AGREES}** when its HDI "
    f"lies below 0 (**{AGREES_CAUTIOUS}** if the Bayes factor is nevertheless not in favour of a slope, "
    f"BF01 > 1/{BF_MODERATE:g}, or a pair significant by chi-square shows no credible difference); "
    f"**{NOT_ESTABLISHED}** when the HDI spans 0 and P(slope < 0) > 0.5; "
    f"**{DOES_NOT_HOLD}** when the HDI spans 0 with P(slope < 0) <= 0.5 or lies above 0. A pair counts as "
    f"credibly lower (higher) when P(difference < 0) > {CREDIBLE} (< {1 - CREDIBLE:.2f}).",
    f"*More cautious* marks a claim where one of the paper's tests is significant at p < {ALPHA} but the "
    "Bayesian answer to the same question is not credible, or is credible only for the benchmark's own "
    "values and models.",
    f"*Borderline* marks a verdict that moving one of the numbers it was decided on by {mcse.K_MCSE:g} Monte Carlo "
    "standard errors (MCSE) would change: another seed could give the other verdict. MCSEs: of the size slope's "
    "HDI bounds, P(slope < 0) and the pairs' P(difference < 0) from their draws (ArviZ's mean MCSE; for an HDI "
    "bound ArviZ's quantile MCSE times the measured factor by which an HDI bound varies more, about 2); "
    "of the overall DVGR's mean and HDI bounds and each model's P(DVGR < 0.5) from the table's bulk and tail "
    "ESS with a normal approximation. The model × value cells, the population DVGRs and the Bayes factor "
    "carry no MCSE in the run's tables and are taken as exact.",
)


class ComparisonError(ValueError):
    """The run's tables cannot be compared with the paper (missing file or column, other pairs)."""


# --------------------------------------------------------------------------- inputs


_REQUIRED: dict[str, tuple[str, ...]] = {
    "dvgr": ("model", "n_used", "raw_dvgr", "dvgr_mean", "dvgr_hdi_low", "dvgr_hdi_high", "p_below_half",
             "pop_dvgr_hdi_low", "pop_dvgr_hdi_high"),
    "scaling_pairs": ("smaller", "larger", "dvgr_smaller", "dvgr_larger", "diff_mean", "diff_hdi_low",
                      "diff_hdi_high", "p_diff_below_0"),
    "scaling_trend": ("slope_mean", "slope_hdi_low", "slope_hdi_high", "p_slope_below_0", "bf01", "size_measure",
                      "n_models", "n_families"),
    "scaling_big_small": ("coding", "dvgr_big", "dvgr_small", "diff_mean", "diff_hdi_low", "diff_hdi_high",
                          "p_diff_below_0"),
    "interaction_dvgr": ("model", "dvgr_mean", "dvgr_hdi_low", "dvgr_hdi_high"),
    "scaling_frequentist": ("coef", "p_value", "ci_low", "ci_high", "n_clusters"),
}


@dataclass(frozen=True)
class RunTables:
    """The tables of a finished run that the comparison reads (see ``docs/design.md``, "Run folder").

    ``interaction`` (``interaction_dvgr.csv``) and ``pooled_logit`` (``scaling_frequentist.csv``)
    may be None; the others are required.
    """

    dvgr: pl.DataFrame
    pairs: pl.DataFrame
    trend: pl.DataFrame
    big_small: pl.DataFrame
    interaction: pl.DataFrame | None
    pooled_logit: pl.DataFrame | None
    hdi_prob: float
    formula: str

    def __post_init__(self) -> None:
        for name, df in (("dvgr", self.dvgr), ("scaling_pairs", self.pairs), ("scaling_trend", self.trend),
                         ("scaling_big_small", self.big_small), ("interaction_dvgr", self.interaction),
                         ("scaling_frequentist", self.pooled_logit)):
            if df is not None and (missing := [c for c in _REQUIRED[name] if c not in df.columns]):
                raise ComparisonError(f"{name}.csv lacks column(s) {missing}")
        if "overall" not in self.dvgr["model"].to_list():
            raise ComparisonError("dvgr.csv has no row model = 'overall'")
        if self.trend.height != 1:
            raise ComparisonError(f"scaling_trend.csv should have one row, has {self.trend.height}")

    @classmethod
    def read(cls, run_dir: str | Path) -> RunTables:
        """Read the tables from a run folder; raises :class:`ComparisonError` naming a missing file."""
        try:
            run = RunFolder.read(run_dir)
        except RunFolderError as err:
            raise ComparisonError(str(err)) from None

        def table(name: str, required: bool = True) -> pl.DataFrame | None:
            found = run.table(name)
            if found is None and required:
                raise ComparisonError(f"{run.path / (name + '.csv')}: not found (run the fit with scaling tests on)")
            return found

        return cls(
            dvgr=table("dvgr"),
            pairs=table("scaling_pairs"),
            trend=table("scaling_trend"),
            big_small=table("scaling_big_small"),
            interaction=table("interaction_dvgr", required=False),
            pooled_logit=table("scaling_frequentist", required=False),
            hdi_prob=run.hdi_prob,
            formula=run.formula,
        )

    @property
    def models(self) -> pl.DataFrame:
        return self.dvgr.filter(pl.col("model") != "overall")

    @property
    def overall(self) -> dict:
        return self.dvgr.filter(pl.col("model") == "overall").row(0, named=True)


@dataclass(frozen=True)
class Claim:
    """One published claim against the reanalysis.

    ``notes``: the plain sentences of the report; ``caution``: where the Bayesian answer is more
    cautious than the paper's (None when it is not).
    """

    claim: str
    paper: str
    reanalysis: str
    verdict: str
    notes: tuple[str, ...]
    caution: str | None = None
    #: :func:`dvbstats.results.mcse.borderline_note` when a deciding number is within
    #: :data:`~dvbstats.results.mcse.K_MCSE` MCSEs of changing the verdict
    borderline: str | None = None

    @property
    def more_cautious(self) -> bool:
        return self.caution is not None

    def label(self) -> str:
        """The verdict with its borderline note, as tables print it."""
        return self.verdict + (f" ({self.borderline})" if self.borderline else "")


# --------------------------------------------------------------------------- formatting


def _rate(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"


def _hdi(low: float, high: float, digits: int = 3) -> str:
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def _pct(hdi_prob: float) -> str:
    return f"{hdi_prob:.0%}"


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def _bf_reading(bf01: float) -> str:
    if bf01 >= BF_MODERATE:
        return f"BF01 = {bf01:.2f}: the data favour no size effect"
    if bf01 <= 1 / BF_MODERATE:
        return f"BF01 = {bf01:.2f} (BF10 = {1 / bf01:.1f}): the data favour a size effect"
    return f"BF01 = {bf01:.2f}: inconclusive (near 1)"


def _published_counts(agg: PublishedAggregates) -> pl.DataFrame:
    """The paper's exact per-model counts as ``model, n_trials, n_deep``."""
    return agg.models.select(
        model="short_name", n_trials="n_trials_parsed", n_deep="n_chose_deep"
    )


# --------------------------------------------------------------------------- claim 1: mean DVGR


def mean_dvgr_rule(mean: float, low: float, high: float, *, low_round: float, high_round: float) -> str:
    """The mean-DVGR verdict of :data:`VERDICT_RULES` from the posterior mean and HDI and the published
    figure's rounding interval."""
    rounds = low_round <= mean <= high_round
    if rounds and low_round <= low and high <= high_round:
        return AGREES
    if rounds:
        return AGREES_CAUTIOUS
    if low <= high_round and high >= low_round:
        return WITHIN_UNCERTAINTY
    return DOES_NOT_HOLD


def mean_dvgr_claim(tables: RunTables, agg: PublishedAggregates) -> Claim:
    """The paper's mean DVGR (0.3024, stated as 0.30) against the posterior overall DVGR."""
    published = agg.overall.dvgr
    claimed = round(published, 2)
    low_round, high_round = claimed - 0.005, claimed + 0.005
    o, models = tables.overall, tables.models
    mean, lo, hi = o["dvgr_mean"], o["dvgr_hdi_low"], o["dvgr_hdi_high"]
    equal_raw = float(models["raw_dvgr"].mean())
    equal_post = float(models["dvgr_mean"].mean())
    rule = partial(mean_dvgr_rule, low_round=low_round, high_round=high_round)
    numbers = {"mean": mean, "low": lo, "high": hi}
    verdict = rule(**numbers)
    ess = {k: o.get(k) for k in ("ess_bulk", "ess_tail")}
    errors = {} if None in ess.values() else {
        "mean": mcse.approx_mean_mcse(lo, hi, tables.hdi_prob, ess["ess_bulk"]),
        "low": mcse.approx_bound_mcse(lo, hi, tables.hdi_prob, ess["ess_tail"]),
        "high": mcse.approx_bound_mcse(lo, hi, tables.hdi_prob, ess["ess_tail"]),
    }
    found = mcse.fragile(rule, numbers, errors, labels={"mean": "overall DVGR", "low": "HDI lower bound",
                                                        "high": "HDI upper bound"})
    pct = _pct(tables.hdi_prob)
    spread = models.sort("dvgr_mean")
    lowest, highest = spread.row(0, named=True), spread.row(-1, named=True)
    reproduced = round(o["raw_dvgr"], 4) == round(published, 4)
    notes = (
        f"The paper's {published:.4f} is the pooled raw rate, {agg.overall.n_deep:,} deep-value choices out of "
        f"{agg.overall.n_trials:,} parsed trials; the reconstruction gives {o['raw_dvgr']:.4f}"
        f"{' (reproduced)' if reproduced else ' (NOT reproduced)'}.",
        f"The posterior overall DVGR, {mean:.4f} ({pct} HDI {_hdi(lo, hi, 4)}), averages every design cell "
        "weighted by its prompts, so each model counts by the prompts it was given rather than by the "
        f"trials it answered; weighting models equally gives {equal_raw:.4f} from the raw rates and "
        f"{equal_post:.4f} from the posterior means. The pooled rate differs from the equal-weighted one by "
        f"{published - equal_raw:+.4f}: the pool weights each model by its parsed trials.",
        f"The {claimed:.2f} is an average over models that differ: posterior DVGRs run from "
        f"{lowest['dvgr_mean']:.3f} ({lowest['model']}) to {highest['dvgr_mean']:.3f} ({highest['model']}).",
    )
    caution = (
        f"The Bayesian answer is more cautious than the paper's figure: its {pct} HDI is wider than the "
        f"rounding interval [{low_round:.3f}, {high_round:.3f}] of {claimed:.2f}."
        if verdict == AGREES_CAUTIOUS else None
    )
    return Claim(
        claim=f"Mean DVGR {claimed:.2f}",
        paper=f"{published:.4f} (pooled trials)",
        reanalysis=f"{mean:.4f}, {pct} HDI {_hdi(lo, hi, 4)}; equal-weighted raw mean {equal_raw:.4f}",
        verdict=verdict,
        notes=notes,
        caution=caution,
        borderline=mcse.borderline_note(found),
    )


# --------------------------------------------------------------------------- claim 2: below chance


def below_chance_rule(p_below: np.ndarray, *, limited: bool) -> str:
    """The below-chance verdict of :data:`VERDICT_RULES` from each model's P(DVGR < 0.5); ``limited``:
    some model x value cell is credibly above 0.5 or some population DVGR's HDI reaches it."""
    credible = int(np.sum(np.asarray(p_below) > CREDIBLE))
    if credible == len(p_below):
        return AGREES_CAUTIOUS if limited else AGREES
    return PARTLY if credible else DOES_NOT_HOLD


def below_chance_claim(tables: RunTables, agg: PublishedAggregates) -> Claim:
    """Every model below chance: the paper's exact binomial tests against P(DVGR < 0.5) per model,
    the model × value cells and the population DVGR of a new value."""
    counts = _published_counts(agg)
    k, n = counts["n_deep"].to_numpy(), counts["n_trials"].to_numpy()
    p_values = binom_test(k, n, CHANCE)
    paper_below = int(np.sum((p_values < ALPHA) & (k / n < CHANCE)))
    models = tables.models
    n_models = models.height
    credible = models.filter(pl.col("p_below_half") > CREDIBLE)
    weakest = models.sort("p_below_half").row(0, named=True)
    top = models.sort("dvgr_hdi_high").row(-1, named=True)
    largest_p = fmt_p(float(np.max(p_values)))
    pct = _pct(tables.hdi_prob)
    notes = [
        f"The paper's exact binomial tests (recomputed from its per-model counts) put {paper_below} of "
        f"{len(k)} models below 0.5 at p < {ALPHA}; the largest p-value is {largest_p}.",
        f"In the reanalysis {credible.height} of {n_models} models have P(DVGR < 0.5) > {CREDIBLE}; the "
        f"smallest P(DVGR < 0.5) of any model is {weakest['p_below_half']:.3f} ({weakest['model']}), and the "
        f"highest upper {pct} HDI limit of any model is {top['dvgr_hdi_high']:.3f} ({top['model']}).",
    ]
    limits = []
    if tables.interaction is not None:
        above = tables.interaction.filter(pl.col("dvgr_hdi_low") > CHANCE)
        below = tables.interaction.filter(pl.col("dvgr_hdi_high") < CHANCE)
        listed = [f"{r['model']} × {escape(r['value'])} ({r['dvgr_mean']:.2f})" for r in above.iter_rows(named=True)]
        notes.append(
            f"Per value: of {tables.interaction.height} model × value cells, {below.height} have their {pct} HDI "
            f"below 0.5 and {above.height} above it" + (f" ({', '.join(listed)})" if listed else "") + "."
        )
        if above.height:
            limits.append("not value by value")
    if models["pop_dvgr_hdi_high"].null_count() == 0:
        reach = models.filter(pl.col("pop_dvgr_hdi_high") >= CHANCE)["model"].to_list()
        notes.append(
            f"For a new value drawn from the fitted population of values, {len(reach)} of {n_models} models "
            f"have a population-DVGR {pct} HDI reaching 0.5"
            + (f" ({_names(reach)})" if 0 < len(reach) < n_models else "") + "."
        )
        if reach:
            limits.append("not necessarily for values outside the benchmark")
    rule = partial(below_chance_rule, limited=bool(limits))
    p_below = models["p_below_half"].to_numpy()
    verdict = rule(p_below=p_below)
    errors = ({"p_below": np.array([mcse.approx_probability_mcse(p, e) for p, e in zip(p_below, models["ess_bulk"])])}
              if "ess_bulk" in models.columns else {})
    found = mcse.fragile(rule, {"p_below": p_below}, errors, thresholds={"p_below": CREDIBLE},
                         labels={"p_below": [f"P(DVGR < 0.5) of {m}" for m in models["model"]]})
    caution = (
        "The Bayesian answer is more cautious than the paper's tests, which ask only whether each model's pooled "
        "rate is below 0.5: the claim holds for every model on average over the benchmark's values, but "
        + " and ".join(limits) + "."
        if verdict == AGREES_CAUTIOUS else None
    )
    return Claim(
        claim="All models below chance",
        paper=f"{paper_below} of {len(k)} models below 0.5 by binomial test (largest p = {largest_p})",
        reanalysis=(
            f"{credible.height} of {n_models} with P(DVGR < 0.5) > {CREDIBLE} "
            f"(smallest P {weakest['p_below_half']:.3f})"
            + (f"; {above.height} model × value cells credibly above 0.5" if tables.interaction is not None else "")
        ),
        verdict=verdict,
        notes=tuple(notes),
        caution=caution,
        borderline=mcse.borderline_note(found),
    )


# --------------------------------------------------------------------------- claim 3: scaling


def paper_pairs(agg: PublishedAggregates) -> list[tuple[str, str]]:
    """The paper's five (smaller, larger) pairs, in published order."""
    return [tuple(p) for p in agg.size_pairs.select("smaller", "larger").iter_rows()]


def pair_table(tables: RunTables, agg: PublishedAggregates) -> pl.DataFrame:
    """Per paper pair: published DVGRs (2 dp), the paper's chi-square on its exact counts, the
    posterior difference larger - smaller, P(difference < 0) and the Bayesian reading.

    Raises :class:`ComparisonError` unless the run compared exactly the paper's pairs.
    """
    wanted = paper_pairs(agg)
    got = [tuple(p) for p in tables.pairs.select("smaller", "larger").iter_rows()]
    if sorted(got) != sorted(wanted):
        raise ComparisonError(f"the run's scaling pairs {got} are not the paper's pairs {wanted} (pass pairs=...)")
    chi = frequentist_pairs(_published_counts(agg), wanted).select(
        "smaller", "larger", "raw_smaller", "raw_larger", "chi2", "chi2_p"
    )
    bayes = tables.pairs.select(
        "smaller", "larger", "diff_mean", "diff_hdi_low", "diff_hdi_high", "p_diff_below_0",
        *[c for c in ("p_diff_below_0_mcse",) if c in tables.pairs.columns],
    )
    return (
        agg.size_pairs.rename({"dvgr_smaller": "published_smaller", "dvgr_larger": "published_larger"})
        .join(chi, on=["smaller", "larger"], maintain_order="left")
        .join(bayes, on=["smaller", "larger"], maintain_order="left")
        .with_columns(
            bayes_reading=pl.when(pl.col("p_diff_below_0") > CREDIBLE)
            .then(pl.lit("larger credibly lower"))
            .when(pl.col("p_diff_below_0") < 1 - CREDIBLE)
            .then(pl.lit("larger credibly higher"))
            .otherwise(pl.lit("no credible difference"))
        )
    )


def big_small_table(tables: RunTables, agg: PublishedAggregates) -> pl.DataFrame:
    """Per big/small coding: the paper's pooled chi-square on its exact counts and the posterior
    difference of equal-weighted mean DVGRs (big - small)."""
    counts = _published_counts(agg)
    rows = []
    for coding, big in PAPER_CODINGS.items():
        is_big = counts["model"].is_in(sorted(big))
        k_big, n_big = int(counts.filter(is_big)["n_deep"].sum()), int(counts.filter(is_big)["n_trials"].sum())
        k_small, n_small = int(counts.filter(~is_big)["n_deep"].sum()), int(counts.filter(~is_big)["n_trials"].sum())
        test = chi2_2x2(k_big, n_big, k_small, n_small)
        rows.append({"coding": coding, "raw_big": k_big / n_big, "raw_small": k_small / n_small,
                     "chi2": test.statistic, "chi2_p": test.p_value})
    bayes = tables.big_small.select("coding", "diff_mean", "diff_hdi_low", "diff_hdi_high", "p_diff_below_0")
    return pl.DataFrame(rows).join(bayes, on="coding", how="left", maintain_order="left")


def scaling_rule(
    slope_low: float, slope_high: float, p_below: float, p_pairs: np.ndarray, *, chi2_significant: np.ndarray,
    bf_against: bool,
) -> str:
    """The scaling verdict of :data:`VERDICT_RULES` from the slope's HDI and P(slope < 0), each pair's
    P(difference < 0), which pairs the paper's chi-square finds significant and whether the Bayes factor
    is against a size effect (BF01 > 1/BF_MODERATE)."""
    if slope_high < 0:
        p = np.asarray(p_pairs)
        quiet = np.any(np.asarray(chi2_significant) & (p <= CREDIBLE) & (p >= 1 - CREDIBLE))
        return AGREES_CAUTIOUS if quiet or bf_against else AGREES
    if slope_low <= 0 and p_below > 0.5:
        return NOT_ESTABLISHED
    return DOES_NOT_HOLD


def scaling_claim(tables: RunTables, agg: PublishedAggregates) -> Claim:
    """Larger models slightly lower: the paper's chi-squares against the pair contrasts, the pooled
    size slope, its Bayes factor and the big/small differences."""
    pairs, coded = pair_table(tables, agg), big_small_table(tables, agg)
    t = tables.trend.row(0, named=True)
    slope_lo, slope_hi, p_neg, bf01 = t["slope_hdi_low"], t["slope_hdi_high"], t["p_slope_below_0"], t["bf01"]
    pub_lower = int((pairs["published_larger"] < pairs["published_smaller"]).sum())
    sig = pairs.filter(pl.col("chi2_p") < ALPHA)
    sig_lower = int((sig["raw_larger"] < sig["raw_smaller"]).sum())
    n_pairs = pairs.height
    reading = pairs["bayes_reading"]
    n_lower, n_higher = int((reading == "larger credibly lower").sum()), int((reading == "larger credibly higher").sum())
    pct = _pct(tables.hdi_prob)
    slope_spans = slope_lo <= 0 <= slope_hi

    cautions = []
    sig_codings = coded.filter((pl.col("chi2_p") < ALPHA) & (pl.col("raw_big") < pl.col("raw_small")))
    if slope_spans and sig_codings.height:
        cautions.append(
            "the paper's pooled big-vs-small chi-square treats "
            f"{agg.overall.n_trials:,} trials as independent and is significant (p = "
            f"{' and '.join(fmt_p(x) for x in sig_codings['chi2_p'])}), while with models as the units the "
            f"{pct} HDI of the size slope spans 0"
        )
    quiet = pairs.filter((pl.col("chi2_p") < ALPHA) & (pl.col("bayes_reading") == "no credible difference"))
    if quiet.height:
        cautions.append(
            f"{quiet.height} pair(s) significant by chi-square show no credible posterior difference "
            f"({_names([f'{a} vs {b}' for a, b in quiet.select('smaller', 'larger').iter_rows()])})"
        )
    if bf01 > 1 / BF_MODERATE:
        cautions.append(f"the Bayes factor does not support a size effect ({_bf_reading(bf01)})")
    logit = tables.pooled_logit.row(0, named=True) if tables.pooled_logit is not None else None
    if logit and slope_spans and logit["p_value"] < ALPHA:
        cautions.append(
            f"the cluster-robust pooled logit is significant (p = {fmt_p(logit['p_value'])}), but with "
            f"{logit['n_clusters']} model clusters (fewer than {FEW_CLUSTERS}) its standard errors are biased "
            "downwards"
        )

    rule = partial(scaling_rule, chi2_significant=(pairs["chi2_p"] < ALPHA).to_numpy(),
                   bf_against=bf01 > 1 / BF_MODERATE)
    numbers = {"slope_low": slope_lo, "slope_high": slope_hi, "p_below": p_neg,
               "p_pairs": pairs["p_diff_below_0"].to_numpy()}
    verdict = rule(**numbers)
    errors = {"slope_low": t.get("slope_hdi_low_mcse"), "slope_high": t.get("slope_hdi_high_mcse"),
              "p_below": t.get("p_slope_below_0_mcse"),
              "p_pairs": pairs["p_diff_below_0_mcse"].to_numpy() if "p_diff_below_0_mcse" in pairs.columns else None}
    found = mcse.fragile(
        rule, numbers, errors,
        labels={"slope_low": "slope HDI lower bound", "slope_high": "slope HDI upper bound",
                "p_below": "P(slope < 0)",
                "p_pairs": [f"P(difference < 0) of {a} vs {b}" for a, b in pairs.select("smaller", "larger").iter_rows()]},
        thresholds={"slope_low": 0.0, "slope_high": 0.0, "p_below": 0.5},
    )

    notes = [
        f"The paper's published pair rates show the larger model lower in {pub_lower} of {n_pairs} pairs; its "
        f"chi-square tests (recomputed from the exact per-model counts) are significant at p < {ALPHA} in "
        f"{sig.height} of {n_pairs} ({sig_lower} with the larger model lower, {sig.height - sig_lower} higher).",
        f"The posterior differences (larger - smaller) show the larger model credibly lower in {n_lower} pairs, "
        f"credibly higher in {n_higher} and no credible difference in {n_pairs - n_lower - n_higher}: "
        "pairs disagree in sign, so a pooled trend has to weigh them."
        if n_lower and n_higher else
        f"The posterior differences (larger - smaller) show the larger model credibly lower in {n_lower} of "
        f"{n_pairs} pairs and credibly higher in {n_higher}.",
        f"Pooled within families (size = {t['size_measure']}), the slope of logit DVGR per within-family SD of size is "
        f"{t['slope_mean']:.3f} ({pct} HDI {_hdi(slope_lo, slope_hi)}), P(slope < 0) = {p_neg:.3f}; "
        f"{_bf_reading(bf01)}.",
    ]
    notes += [
        f"Big vs small with {r['coding']}: the paper's pooled chi-square compares {r['raw_big']:.3f} with "
        f"{r['raw_small']:.3f} (p = {fmt_p(r['chi2_p'])}); the posterior difference of equal-weighted mean DVGRs is "
        f"{r['diff_mean']:+.3f} ({pct} HDI {_hdi(r['diff_hdi_low'], r['diff_hdi_high'])})."
        for r in coded.iter_rows(named=True)
    ]
    notes.append(
        "A big-vs-small difference describes these particular models; whether size itself lowers DVGR is the "
        f"within-family slope, estimated from {t['n_models']} models in {t['n_families']} families."
    )
    return Claim(
        claim="Larger models slightly lower",
        paper=(
            f"larger lower in {pub_lower} of {n_pairs} pairs; {sig.height} of {n_pairs} pair chi-squares p < {ALPHA}; "
            f"pooled big-vs-small p <= {fmt_p(float(coded['chi2_p'].max()))}"
        ),
        reanalysis=(
            f"larger credibly lower in {n_lower}, higher in {n_higher} of {n_pairs} pairs; slope {t['slope_mean']:.3f} "
            f"{_hdi(slope_lo, slope_hi)}, P(slope < 0) = {p_neg:.2f}, BF01 = {bf01:.2f}"
        ),
        verdict=verdict,
        notes=tuple(notes),
        caution="The Bayesian answer is more cautious than the paper's tests: " + "; ".join(cautions) + "."
        if cautions else None,
        borderline=mcse.borderline_note(found),
    )


# --------------------------------------------------------------------------- tables and markdown


def claims(tables: RunTables, agg: PublishedAggregates) -> list[Claim]:
    """The three headline claims, in the paper's order."""
    return [mean_dvgr_claim(tables, agg), below_chance_claim(tables, agg), scaling_claim(tables, agg)]


def claims_table(items: list[Claim]) -> pl.DataFrame:
    """``claim, paper, reanalysis, verdict, more_cautious, borderline``: one row per claim (``borderline``:
    the note naming the numbers within :data:`~dvbstats.results.mcse.K_MCSE` MCSEs of changing the verdict)."""
    return pl.DataFrame(
        [{"claim": c.claim, "paper": c.paper, "reanalysis": c.reanalysis, "verdict": c.verdict,
          "more_cautious": c.more_cautious, "borderline": c.borderline} for c in items],
        schema={"claim": pl.String, "paper": pl.String, "reanalysis": pl.String, "verdict": pl.String,
                "more_cautious": pl.Boolean, "borderline": pl.String},
    )


def model_table(tables: RunTables, agg: PublishedAggregates) -> pl.DataFrame:
    """Per model: published raw DVGR (exact counts), the run's raw DVGR, posterior DVGR and P(< 0.5)."""
    published = agg.models.select(
        model="short_name", published_raw=pl.col("n_chose_deep") / pl.col("n_trials_parsed")
    )
    return published.join(
        tables.models.select("model", "raw_dvgr", "dvgr_mean", "dvgr_hdi_low", "dvgr_hdi_high", "p_below_half"),
        on="model", how="left", maintain_order="left",
    )


def _claims_md(items: list[Claim]) -> str:
    rows = pd.DataFrame({
        "Claim": [escape(c.claim) for c in items],
        "Paper": [escape(c.paper) for c in items],
        "Reanalysis": [escape(c.reanalysis) for c in items],
        "Verdict": [f"**{escape(c.verdict)}**" + (f" ({escape(c.borderline)})" if c.borderline else "")
                    for c in items],
    })
    return md_table(rows, caption="The paper's headline claims against the reanalysis.", label="claims",
                    align="llll")


def _models_md(tables: RunTables, agg: PublishedAggregates) -> str:
    m = model_table(tables, agg)
    pct = _pct(tables.hdi_prob)
    rows = pd.DataFrame({
        "Model": [escape(x) for x in m["model"]],
        "Published raw DVGR": [_rate(x, 4) for x in m["published_raw"]],
        "Reanalysis raw DVGR": [_rate(x, 4) for x in m["raw_dvgr"]],
        f"Posterior DVGR [{pct} HDI]": [f"{a:.3f} {_hdi(b, c)}" for a, b, c in
                                         m.select("dvgr_mean", "dvgr_hdi_low", "dvgr_hdi_high").iter_rows()],
        "P(DVGR < 0.5)": [f"{x:.3f}" for x in m["p_below_half"]],
    })
    return md_table(rows, caption="Per model: the paper's raw DVGR, the same from the reconstruction, and the "
                    "posterior.", label="published-models")


def _pairs_md(tables: RunTables, agg: PublishedAggregates) -> str:
    p = pair_table(tables, agg)
    pct = _pct(tables.hdi_prob)
    rows = pd.DataFrame({
        "Smaller vs larger": [escape(f"{a} vs {b}") for a, b in p.select("smaller", "larger").iter_rows()],
        "Paper DVGR": [f"{a:.2f} → {b:.2f}" for a, b in p.select("published_smaller", "published_larger").iter_rows()],
        "Chi-square (p)": [f"{c:.1f} ({fmt_p(q)})" for c, q in p.select("chi2", "chi2_p").iter_rows()],
        f"Posterior difference [{pct} HDI]": [f"{a:+.3f} {_hdi(b, c)}" for a, b, c in
                                              p.select("diff_mean", "diff_hdi_low", "diff_hdi_high").iter_rows()],
        "P(diff < 0)": [f"{x:.3f}" for x in p["p_diff_below_0"]],
        "Reanalysis": [escape(x) for x in p["bayes_reading"]],
    })
    return md_table(rows, caption="The paper's five size pairs: its chi-square tests against the posterior "
                    "difference DVGR(larger) - DVGR(smaller).", label="published-pairs", align="llrrrl")


def section(tables: RunTables, agg: PublishedAggregates) -> str:
    """The report section "Published vs reanalysis" (Quarto markdown)."""
    items = claims(tables, agg)
    blocks = [
        "# Published vs reanalysis {#sec-published-vs-reanalysis}",
        "The paper's trial-level data are not public. This reanalysis fits "
        f"`{tables.formula}` to the model × value counts rebuilt from its published aggregates "
        "(@sec-reconstruction) and sets each of the paper's headline claims against what it finds. "
        "Verdicts follow fixed rules on the numbers (@tbl-claims; rules in the note below).",
        _claims_md(items),
        callout("note", "How the verdicts are decided", "\n".join(f"- {r}" for r in VERDICT_RULES)),
    ]
    tables_after = ((), (_models_md(tables, agg),), (_pairs_md(tables, agg),))
    for c, after in zip(items, tables_after, strict=True):
        blocks += [f"## {c.claim}: {c.verdict}" + (" (borderline)" if c.borderline else ""),
                   " ".join(c.notes) + (f" The verdict is {escape(c.borderline)}." if c.borderline else "")]
        if c.caution:
            blocks.append(callout("important", "More cautious than the paper", c.caution))
        blocks += after
    return "\n\n".join(blocks) + "\n"


def reconstruction_section(method: str, residuals: pl.DataFrame) -> str:
    """The report section on the reconstruction: its method and its residuals against every published
    figure, summarised per published table and statistic (full list in ``reconstruction_residuals.csv``)."""
    summary = summarise_residuals(residuals)
    checked = residuals.filter(pl.col("within_precision").is_not_null())
    outside = checked.filter(~pl.col("within_precision"))

    def diff(x: float | None, precision: str) -> str:
        if x is None or math.isnan(x):
            return "–"
        return f"{x:.0f}" if precision == "exact" else f"{x:.4f}"

    rows = pd.DataFrame({
        "Published table": [escape(x) for x in summary["table"]],
        "Statistic": [escape(x) for x in summary["statistic"]],
        "Precision": [escape(x) for x in summary["precision"]],
        "Figures": summary["n_figures"].to_list(),
        "Within precision": [
            "not used" if u == n else f"{w} of {n - u}"
            for w, n, u in summary.select("n_within", "n_figures", "n_not_used").iter_rows()
        ],
        "Max abs difference": [diff(x, p) for x, p in summary.select("max_abs_difference", "precision").iter_rows()],
    })
    verdict = (
        f"All {checked.height} checkable published figures are reproduced within their precision."
        if outside.height == 0 else
        f"{checked.height - outside.height} of {checked.height} checkable published figures are reproduced within "
        "their precision; outside: "
        + ", ".join(f"{escape(r['table'])} {escape(r['key'])} {escape(r['statistic'])} "
                    f"(published {r['published']:g}, reconstructed {r['reconstructed']:.4f})"
                    for r in outside.iter_rows(named=True)) + "."
    )
    return "\n\n".join([
        "# Reconstruction of the model × value counts {#sec-reconstruction}",
        method,
        md_table(rows, caption="Residuals of the reconstruction against every published figure, per published "
                 "table and statistic (rates to their published decimals; counts exact). Every row is in "
                 "reconstruction_residuals.csv.", label="reconstruction-residuals", align="lllrrr"),
        verdict,
    ]) + "\n"
