"""Agreement between models: do models of one developer (or family) answer alike?

For every pair of models, on the items both answered (:func:`dvbstats.results.paired.pair_counts`):
raw agreement and Cohen's kappa with its 95% interval (:func:`agreement_table`). Then the DVB
paper's question, whether same-group pairs agree more than cross-group pairs, three ways
(:func:`agreement_models`):

* the paper's analysis: pair-level agreement in percent, a linear mixed model
  ``agreement ~ same_group + (1|model1) + (1|model2)`` (statsmodels ``MixedLM`` with crossed
  variance components) — model1 and model2 are *separate* factors, so a model's effect as the
  first member of a pair is not its effect as the second, which the arbitrary pair order makes
  meaningless;
* the same linear model with one **multi-membership** model effect (each model's effect enters
  every pair it is in), and the plain difference of means as the simple alternative;
* the Bayesian version: agreement counts ``k_p ~ Binomial(n_p, logit^-1(a + b same_p + u[m1] +
  u[m2] + e_p))`` with multi-membership model effects ``u`` and a pair effect ``e_p`` (the
  linear model's residual: without it 36 pairs x ~12,000 items would count as 400,000
  independent observations and the interval would be far too narrow), the pair effect
  integrated out as a beta-binomial (:func:`dvbstats.results.agreement_pymc.bayes_model`).

The grouping column is a parameter (any column of the model table: ``developer``, ``family``).
:func:`statement` says in numbers what 36 pairs of 9 models can and cannot show.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import arviz as az
import numpy as np
import polars as pl
import polars.selectors
from scipy import sparse, stats
from statsmodels.regression.mixed_linear_model import MixedLM, VCSpec

from dvbstats.benchmarks.definition import register_analysis
from dvbstats.constants import CONFIDENCE_LEVEL, HDI_PROB
from dvbstats.input.registry import ModelTable
from dvbstats.model import lazy
from dvbstats.model.sample import SamplerSettings, diagnose, run_nutpie
from dvbstats.results import paired
from dvbstats.results.agreement_logp import AgreementDensity

#: PyMC: imported when the Bayesian agreement model is sampled with PyMC's sampler (``sampler="pymc"``)
agreement_pymc = lazy.module("dvbstats.results.agreement_pymc")

#: Level of the frequentist intervals (the paper's 95% CI; statsmodels' kappa interval is fixed at 95%).
LEVEL = CONFIDENCE_LEVEL
#: Methods of :func:`agreement_models`, in the order of the output table.
METHODS: tuple[str, ...] = ("difference of means", "LMM crossed model1 + model2 (paper)",
                            "LMM multi-membership", "Bayes binomial multi-membership")


#: Fewest models for the agreement model: 3 models give 3 pairs for an intercept, a group effect, model
#: effects and a residual, which the mixed models cannot separate; 4 give 6 pairs.
MIN_MODELS = 4
#: NUTS target acceptance when the run gives none.
TARGET_ACCEPT = 0.95
#: The LMMs' variance components are passed to statsmodels as sparse matrices from this many pairs on
#: (measured faster at 4,950 pairs, slower at 36; sizes between were not measured).
SPARSE_PAIRS = 1000
#: Model effects are centred when (M - 1) sd_model^2 / sd_pair^2 reaches this (:func:`centred_model_effects`).
CENTRED_RATIO = 5.0


class AgreementUnavailable(ValueError):
    """The agreement model cannot be fitted (fewer than :data:`MIN_MODELS` models, or no same- or cross-group pair)."""


def model_order(models: ModelTable, present: Sequence[str], group: str = "developer") -> list[str]:
    """Short names of ``present`` ordered by ``group``, family, size and name (the heatmap order)."""
    _check_group(models, group)
    rows = models.data.filter(pl.col("short_name").is_in(list(present)))
    ordered = rows.sort(pl.col(group).fill_null("~"), "family", "size_rank_in_family", "short_name",
                        nulls_last=True)["short_name"].to_list()
    return ordered + sorted(set(present) - set(ordered))


def _check_group(models: ModelTable, group: str) -> None:
    if group not in models.data.columns:
        raise ValueError(f"agreement: the model table has no column {group!r} "
                         f"(columns: {', '.join(models.data.columns)})")


def agreement_table(counts: pl.DataFrame, models: ModelTable, group: str = "developer") -> pl.DataFrame:
    """Raw agreement and Cohen's kappa per pair, with each model's group and whether they share it.

    Adds to :func:`dvbstats.results.paired.pair_counts`: ``n_agree = n_11 + n_00``, ``agreement =
    n_agree / n_shared``, ``chance`` (the agreement expected from the two models' rates alone),
    ``kappa`` with its asymptotic standard error ``kappa_se`` and ``LEVEL`` interval
    (``statsmodels.stats.inter_rater.cohens_kappa``), and ``group`` (the column's name),
    ``group1, group2`` and ``same_group``. A model with no value in the column (an unknown
    developer) shares a group with no other model. Kappa is missing when chance agreement is 1.
    """
    _check_group(models, group)
    of = dict(zip(models.data["short_name"].to_list(), models.data[group].cast(pl.String).to_list()))
    n, n_11, n_10, n_01, n_00 = (counts[c].to_numpy().astype(float) for c in ("n_shared", "n_11", "n_10", "n_01", "n_00"))
    with np.errstate(invalid="ignore", divide="ignore"):
        p1, p2 = (n_11 + n_10) / n, (n_11 + n_01) / n
        chance = p1 * p2 + (1 - p1) * (1 - p2)
        agreement = (n_11 + n_00) / n
    kappa = kappa_2x2(n_11, n_10, n_01, n_00)
    defined = (n > 0) & (chance < 1)
    g1 = [of.get(m) for m in counts["model1"].to_list()]
    g2 = [of.get(m) for m in counts["model2"].to_list()]
    return counts.with_columns(
        (pl.col("n_11") + pl.col("n_00")).alias("n_agree"),
        pl.Series("agreement", np.where(n > 0, agreement, np.nan), dtype=pl.Float64),
        pl.Series("chance", np.where(n > 0, chance, np.nan), dtype=pl.Float64),
        *[pl.Series(k, np.where(defined, v, np.nan), dtype=pl.Float64) for k, v in kappa.items()],
        pl.lit(group, pl.String).alias("group"),
        pl.Series("group1", g1, dtype=pl.String),
        pl.Series("group2", g2, dtype=pl.String),
        pl.Series("same_group", [a is not None and a == b for a, b in zip(g1, g2)], dtype=pl.Boolean),
    )


def kappa_2x2(n_11: np.ndarray, n_10: np.ndarray, n_01: np.ndarray, n_00: np.ndarray) -> dict[str, np.ndarray]:
    """Cohen's kappa of many 2x2 tables ``[[n_11, n_10], [n_01, n_00]]`` with its asymptotic standard error
    and ``LEVEL`` interval: ``statsmodels.stats.inter_rater.cohens_kappa``'s simple-kappa arithmetic written
    out for arrays (calling it per pair cost 5 ms each, 25 s at 4,950 pairs). NaN where undefined."""
    n = n_11 + n_10 + n_01 + n_00
    with np.errstate(invalid="ignore", divide="ignore"):
        (p_11, p_10), (p_01, p_00) = (n_11 / n, n_10 / n), (n_01 / n, n_00 / n)
        row0, row1 = (n_11 + n_10) / n, (n_01 + n_00) / n
        col0, col1 = (n_11 + n_01) / n, (n_10 + n_00) / n
        expected = row0 * col0 + row1 * col1
        kappa = ((n_11 + n_00) / n - expected) / (1 - expected)
        term_a = p_11 * (1 - (row0 + col0) * (1 - kappa)) ** 2 + p_00 * (1 - (row1 + col1) * (1 - kappa)) ** 2
        term_b = (1 - kappa) ** 2 * (p_10 * (col0 + row1) ** 2 + p_01 * (col1 + row0) ** 2)
        term_c = (kappa - expected * (1 - kappa)) ** 2
        se = np.sqrt((term_a + term_b - term_c) / (1 - expected) ** 2 / n)
    delta = stats.norm.isf((1 - LEVEL) / 2) * se
    return {"kappa": kappa, "kappa_se": se, "kappa_low": kappa - delta, "kappa_high": kappa + delta}


# --------------------------------------------------------------------------- the agreement model


def pair_design(table: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Pair-level agreement (percent), same-group indicator, multi-membership matrix (a row per pair with a shared
    item, a 1 for each of its models) and model names: the design of the agreement models."""
    pairs = table.filter(pl.col("n_shared") > 0)
    names = sorted(set(pairs["model1"]) | set(pairs["model2"]))
    index = {m: i for i, m in enumerate(names)}
    members = np.zeros((pairs.height, len(names)))
    for row, (m1, m2) in enumerate(zip(pairs["model1"], pairs["model2"], strict=True)):
        members[row, index[m1]] += 1
        members[row, index[m2]] += 1
    same = pairs["same_group"].cast(pl.Float64).to_numpy()
    if len(names) < MIN_MODELS or same.min() == same.max():
        raise AgreementUnavailable(
            f"the agreement model needs at least {MIN_MODELS} models with both same-group and cross-group pairs; "
            f"have {len(names)} models, {int(same.sum())} same-group and {int((1 - same).sum())} cross-group pairs")
    return 100 * pairs["agreement"].to_numpy(), same, members, names


def _indicators(labels: Sequence[str]) -> np.ndarray:
    levels = sorted(set(labels))
    return np.array([[label == level for level in levels] for label in labels], dtype=float)


def _row(method: str, scale: str, estimate: float, low: float, high: float, *, p_value: float = np.nan,
         p_positive: float = np.nan, interval: str) -> dict:
    return {"method": method, "scale": scale, "estimate": estimate, "low": low, "high": high, "interval": interval,
            "p_value": p_value, "p_positive": p_positive}


def _mixed(y: np.ndarray, same: np.ndarray, components: dict[str, np.ndarray], method: str) -> dict:
    """``y ~ same`` with the given variance components (one group holds all pairs), REML, Wald interval."""
    exog = np.column_stack([np.ones_like(y), same])
    names = list(components)
    # Sparse indicator matrices give statsmodels the same fit by sparse solves: at 4,950 pairs of 100 models
    # 3.5 s CPU for the three LMMs instead of 23.5 s; at 36 pairs of 9 they cost 0.3 s instead of 0.02 s.
    form = sparse.csr_matrix if len(y) >= SPARSE_PAIRS else np.asarray
    vc = VCSpec(names, [[[f"{n}[{i}]" for i in range(z.shape[1])]] for n, z in components.items()],
                [[form(z)] for z in components.values()])
    model = MixedLM(y, exog, groups=np.ones(len(y)), exog_re=np.zeros((len(y), 0)), exog_vc=vc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # boundary fits (a zero variance) are legitimate here
        fit = model.fit(reml=True)
    low, high = fit.conf_int(alpha=1 - LEVEL)[1]
    note = "" if fit.converged else "; REML did not converge"
    row = _row(method, "percentage points", float(fit.params[1]), float(low), float(high),
               p_value=float(fit.pvalues[1]), interval=f"Wald {LEVEL:.0%} CI{note}")
    row["sd_model"] = float(np.sqrt(np.sum(fit.vcomp)))  # one component (multi-membership) or the two summed
    row["sd_pair"] = float(np.sqrt(fit.scale))
    return row


def frequentist_models(table: pl.DataFrame) -> list[dict]:
    """The difference of means, the paper's crossed LMM and the multi-membership LMM (percentage points)."""
    y, same, members, _ = pair_design(table)
    pairs = table.filter(pl.col("n_shared") > 0)
    a, b = y[same == 1], y[same == 0]
    welch = stats.ttest_ind(a, b, equal_var=False)
    ci = welch.confidence_interval(LEVEL)
    rows = [_row(METHODS[0], "percentage points", float(a.mean() - b.mean()), float(ci.low), float(ci.high),
                 p_value=float(welch.pvalue), interval=f"Welch {LEVEL:.0%} CI (pairs as independent)")]
    crossed = {"model1": _indicators(pairs["model1"].to_list()), "model2": _indicators(pairs["model2"].to_list())}
    rows.append(_mixed(y, same, crossed, METHODS[1]))
    rows.append(_mixed(y, same, {"model": members}, METHODS[2]))
    return rows


def centred_model_effects(table: pl.DataFrame) -> bool:
    """Whether the data dominate the prior of each model effect, so that ``u`` is sampled centred.

    From the multi-membership LMM's variance estimates: a model is in ``M - 1`` pairs, so its
    effect is pinned down when ``(M - 1) sd_model^2 / sd_pair^2`` is large (>= :data:`CENTRED_RATIO`).
    Measured (4 x 1000 draws, beta-binomial, 9 simulated models): centred failed at ratios 0.52
    (bulk ESS 147, 7 divergences; non-centred ESS 970), 1.9 and 3.6 (2 and 10 divergences) and
    passed at 4.6, 4.8, 15.7; on the synthetic example (ratio 52) centred gave ESS 2,166 against
    403 non-centred.
    """
    y, same, members, _ = pair_design(table)
    return _centred(_mixed(y, same, {"model": members}, METHODS[2]), members.shape[1])


def _centred(multi_membership: dict, n_models: int) -> bool:
    """:func:`centred_model_effects` from the multi-membership LMM's row."""
    return (n_models - 1) * multi_membership["sd_model"] ** 2 >= CENTRED_RATIO * multi_membership["sd_pair"] ** 2


@dataclass(frozen=True)
class BayesResult:
    rows: list[dict]
    diagnostics: dict
    idata: az.InferenceData


def bayes_fit(table: pl.DataFrame, settings: SamplerSettings, *, hdi_prob: float = HDI_PROB,
              progress: bool = False, centred: bool | None = None) -> BayesResult:
    """Sample the Bayesian agreement model (:func:`dvbstats.results.agreement_pymc.bayes_model`); rows for
    ``diff_pp`` and ``b``. With nutpie, its hand-written density
    (:mod:`dvbstats.results.agreement_logp`: the same posterior, nothing compiled per run), else the PyMC model.
    ``centred``: the model effects' form (default: :func:`centred_model_effects`)."""
    if settings.target_accept is None:
        settings = replace(settings, target_accept=TARGET_ACCEPT)
    centred = centred_model_effects(table) if centred is None else centred
    if settings.sampler == "nutpie":
        _, same, members, models = pair_design(table)
        pairs = table.filter(pl.col("n_shared") > 0)
        density = AgreementDensity(same, members, pairs["n_agree"].to_numpy(), pairs["n_shared"].to_numpy(), models,
                                   centred=centred)
        idata = run_nutpie(density.compile(), settings, progress)
    else:
        idata = agreement_pymc.sample(table, settings, centred=centred, progress=progress)
    post = idata.posterior
    names = ("a", "b", "sd_model", "sd_pair", "diff_pp")
    diagnostics = diagnose({n: post[n] for n in names}, idata)
    rows = []
    for name, scale in (("diff_pp", "percentage points"), ("b", "log-odds")):
        draws = post[name].to_numpy().ravel()
        low, high = az.hdi(draws, hdi_prob=hdi_prob)
        row = _row(METHODS[3], scale, float(draws.mean()), float(low), float(high),
                   p_positive=float((draws > 0).mean()), interval=f"{hdi_prob:.0%} HDI")
        row["sd_model"] = float(post["sd_model"].mean())
        row["sd_pair"] = float(post["sd_pair"].mean())
        rows.append(row)
    return BayesResult(rows, {**diagnostics.summary(), "model_effects": "centred" if centred else "non-centred"},
                       idata)


def group_means(table: pl.DataFrame) -> dict[str, float]:
    """Mean agreement (percent) over same-group and over cross-group pairs, and their numbers."""
    pairs = table.filter(pl.col("n_shared") > 0)
    same = pairs.filter("same_group")["agreement"]
    cross = pairs.filter(~pl.col("same_group"))["agreement"]
    return {"same_mean": 100 * float(same.mean()) if same.len() else np.nan,
            "cross_mean": 100 * float(cross.mean()) if cross.len() else np.nan,
            "n_same_pairs": same.len(), "n_cross_pairs": cross.len()}


def statement(table: pl.DataFrame) -> str:
    """What these pairs can show, in numbers: pairs, models, pairs per model, where same-group pairs come from."""
    pairs = table.filter(pl.col("n_shared") > 0)
    group = pairs["group"][0] if pairs.height else "group"
    n_models = len(set(pairs["model1"]) | set(pairs["model2"]))
    same = pairs.filter("same_group")
    by = same.group_by("group1").len().sort(["len", "group1"], descending=[True, False])  # ties by name: same text every run
    sources = ", ".join(f"{n} from {g}" for g, n in by.iter_rows())
    biggest = by.row(0) if by.height else (None, 0)
    text = (
        f"{pairs.height} pairs of {n_models} models; each model is in {n_models - 1} pairs, so the pairs are not "
        f"independent observations: the information about a {group} effect comes from {n_models} models, not "
        f"{pairs.height} pairs, and every pair also shares its items with every other pair. "
        f"{same.height} pairs share a {group} ({sources or 'none'}) and {pairs.height - same.height} do not")
    if same.height and biggest[1] / same.height > 0.5:
        text += (f"; {biggest[1]} of the {same.height} same-{group} pairs are {biggest[0]} pairs, so the "
                 f"estimate says mostly whether {biggest[0]}'s models agree with one another")
    text += (
        f". With {by.height} {group} group(s) contributing same-{group} pairs, the comparison cannot separate a shared "
        f"{group} from anything else those models share (similar rates alone raise agreement by chance: "
        "see the chance column and kappa). The paper's crossed model treats a model's effect as first and as "
        "second member of a pair as two unrelated effects, though the order within a pair is arbitrary; the "
        "multi-membership models give each model one effect. Intervals are conditional on these "
        f"{n_models} models and describe no wider population of {group} groups. The Bayesian model treats each "
        "pair's departure from its two models' effects as a draw from a distribution (sd_pair), so its interval is "
        f"for the same-{group} effect among pairs of these models, not only these {pairs.height} pairs' own "
        "difference (which it would estimate more narrowly), and it treats the pairs' agreement counts as "
        "independent given those effects, though pairs that share a model share that model's answers.")
    return text


# --------------------------------------------------------------------------- run


@dataclass(frozen=True)
class Agreement:
    """Everything this module writes to a run folder."""

    pairs: pl.DataFrame  # agreement.csv
    tests: pl.DataFrame  # paired_tests.csv
    models: pl.DataFrame  # agreement_model.csv (no columns, and no file, when the model could not be fitted)
    notes: dict  # group, statement, diagnostics, why a part was not run

    def tables(self) -> dict[str, pl.DataFrame]:
        """The run folder's agreement tables, NaN written as missing (no agreement model: no table;
        ``notes["not_run"]`` says why)."""
        tables = {"agreement": self.pairs, "paired_tests": self.tests, "agreement_model": self.models}
        return {name: table.with_columns(pl.selectors.float().fill_nan(None))
                for name, table in tables.items() if table.width}

    def record(self) -> dict:
        """Group, statement, diagnostics, why a part was not run (``agreement_methods.json``)."""
        return self.notes


def agreement_models(table: pl.DataFrame, settings: SamplerSettings, *, hdi_prob: float = HDI_PROB,
                     progress: bool = False) -> tuple[pl.DataFrame, dict]:
    """The same-group effect by :data:`METHODS`, one table, and the Bayesian fit's diagnostics."""
    rows = frequentist_models(table)
    centred = _centred(rows[METHODS.index("LMM multi-membership")], len(pair_design(table)[3]))
    bayes = bayes_fit(table, settings, hdi_prob=hdi_prob, progress=progress, centred=centred)  # the LMM fitted once
    rows += bayes.rows
    means = group_means(table)
    frame = pl.DataFrame([{"group": table["group"][0], **means, **r} for r in rows],
                         schema_overrides={"sd_model": pl.Float64, "sd_pair": pl.Float64})
    return frame, bayes.diagnostics


def agreement_analysis(trials: pl.DataFrame, models: ModelTable, *, group: str = "developer",
                       settings: SamplerSettings | None = None, hdi_prob: float = HDI_PROB,
                       outcome: str = "chose_deep", item: str = "prompt_id", progress: bool = False) -> Agreement:
    """Pair tables, paired tests and the agreement model of a trial table (``TrialTable.data``)."""
    settings = settings or SamplerSettings()
    present = paired.used_outcomes(trials, outcome=outcome, item=item)["model"].unique().to_list()
    counts = paired.pair_counts(trials, model_order(models, present, group), outcome=outcome, item=item)
    pairs = agreement_table(counts, models, group)
    notes: dict = {"group": group, "level": LEVEL, "hdi_prob": hdi_prob, "outcome": outcome, "item": item}
    try:
        fitted, notes["diagnostics"] = agreement_models(pairs, settings, hdi_prob=hdi_prob, progress=progress)
        notes["statement"] = statement(pairs)
    except AgreementUnavailable as exc:
        fitted, notes["not_run"] = pl.DataFrame(), str(exc)
    return Agreement(pairs, paired.paired_tests(counts), fitted, notes)


@register_analysis("dvb model agreement")
def dvb_agreement(used: pl.LazyFrame, models: ModelTable, **options) -> Agreement:
    """DVB's agreement analysis (``DVB.agreement`` names it): between models on the prompts both answered, and
    paired tests (only the columns it needs are read: a streamed trial file stays on disk)."""
    rows = used.select("model", "prompt_id", "chose_deep", "status").collect(engine="streaming")
    return agreement_analysis(rows, models, **options)
