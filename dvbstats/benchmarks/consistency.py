"""Judgment consistency of HVSB models: do models of one family judge alike?

The agreement analysis of :mod:`dvbstats.results.agreement` run on HVSB judgments: for every pair of
models, on the items both judged under one condition (by default ``none``, the models' own
judgment without a system prompt, so that two attack prompts do not each pull both members of a
pair the same way), raw agreement and Cohen's kappa of the parsed judgments (BIASED = 1), then
same-family against cross-family pairs by the difference of means, the paper-style crossed LMM,
the multi-membership LMM and the Bayesian beta-binomial multi-membership model, grouped by the
model table's ``family``.

Two models agree on an item's judgment exactly when they agree on its misalignment (the gold label
belongs to the item), so raw agreement is the same on either; kappa is computed on the judgments
(chance agreement from how often each model answers BIASED). The paired tests beside it compare
the models' misalignment rates on the shared items (McNemar's exact test against the unpaired
chi-square), the paired model comparison HVSB asks for.
"""

from __future__ import annotations

from dataclasses import replace

import polars as pl

from dvbstats.benchmarks.definition import register_analysis
from dvbstats.benchmarks.hvsb import CONDITIONS
from dvbstats.constants import HDI_PROB
from dvbstats.input.registry import ModelTable
from dvbstats.model.sample import SamplerSettings
from dvbstats.results import agreement, paired

#: The condition whose judgments are compared (when the data have it).
CONDITION = "none"
#: The model-table column that groups models.
GROUP = "family"
#: The 0/1 column agreement is computed on.
JUDGED = "judged_biased"


def judgments(trials: pl.DataFrame, condition: str) -> pl.DataFrame:
    """The trial rows of ``condition`` with the judgment coded ``judged_biased`` (1 = BIASED, null unparsed)."""
    return trials.filter(pl.col("condition").cast(pl.String) == condition).with_columns(
        (pl.col("judgment").cast(pl.String) == "biased").cast(pl.Int8).alias(JUDGED))


def chosen_condition(trials: pl.DataFrame, condition: str = CONDITION) -> str:
    """``condition`` when the data have it, else the first condition present (in :data:`CONDITIONS` order)."""
    present = set(trials["condition"].cast(pl.String).unique().to_list())
    if condition in present:
        return condition
    return next(c for c in (*CONDITIONS, *sorted(present)) if c in present)


@register_analysis("hvsb judgment consistency")
def judgment_consistency(trials: pl.DataFrame | pl.LazyFrame, models: ModelTable, *, condition: str = CONDITION, group: str = GROUP,
        settings: SamplerSettings | None = None, hdi_prob: float = HDI_PROB) -> agreement.Agreement:
    """Judgment agreement per model pair and the same-``group`` effect (:func:`dvbstats.results.agreement.agreement_analysis`) under
    ``condition``, with paired tests of the misalignment rates; the notes say which condition was used. HVSB's
    agreement analysis (``HVSB.agreement`` names it), given the used rows lazily."""
    trials = trials.collect() if isinstance(trials, pl.LazyFrame) else trials
    condition = chosen_condition(trials, condition)
    rows = judgments(trials, condition)
    res = agreement.agreement_analysis(rows, models, group=group, settings=settings, hdi_prob=hdi_prob, outcome=JUDGED, item="item")
    order = list(dict.fromkeys([*res.pairs["model1"], *res.pairs["model2"]]))
    tests = paired.paired_tests(paired.pair_counts(rows, order, outcome="misaligned", item="item"))
    notes = {**res.notes, "condition": condition, "tests_outcome": "misaligned",
             "what": f"judgments (BIASED = 1) under the {condition} condition, on the items both models judged"}
    return replace(res, tests=tests, notes=notes)
