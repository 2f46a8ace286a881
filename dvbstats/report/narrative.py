"""The report's plain-language reading, written from the run's numbers.

Nothing here is canned: every sentence is chosen by the numbers (how many models are
credibly below chance, how wide the intervals are, whether the sampler checks passed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from dvbstats.constants import CHANCE, CREDIBLE
from dvbstats.report import markup

#: An HDI wider than this (on the probability scale) is called wide.
WIDE = 0.2


def dvgr(x: float) -> str:
    """A DVGR (a probability) as the report prints it (``–`` when missing: a model without trials)."""
    return "–" if math.isnan(x) else f"{x:.3f}"


def interval(low: float, high: float) -> str:
    """An interval as the report prints it (en dash, no spaces; ``–`` when missing)."""
    return "–" if math.isnan(low) or math.isnan(high) else f"{dvgr(low)}–{dvgr(high)}"


def _names(models: Sequence[str]) -> str:
    models = list(models)
    if len(models) <= 2:
        return " and ".join(models)
    return ", ".join(models[:-1]) + f" and {models[-1]}"


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def below_chance(models: pd.DataFrame) -> pd.Series:
    """Which models are credibly below chance: P(DVGR < CHANCE) > CREDIBLE."""
    return models["p_below_half"].astype(float) > CREDIBLE


def above_chance(models: pd.DataFrame) -> pd.Series:
    """Which models are credibly above chance: P(DVGR < CHANCE) < 1 - CREDIBLE."""
    return models["p_below_half"].astype(float) < 1 - CREDIBLE


def _population(models: pd.DataFrame, hdi: str) -> list[str]:
    """The caveat of the population DVGR: which models' intervals reach chance on new items."""
    columns = ("pop_dvgr_hdi_low", "pop_dvgr_hdi_high")
    if not set(columns) <= set(models.columns) or models[list(columns)].isna().all(axis=None):
        return []
    low, high = (models[c].astype(float) for c in columns)
    reach = models.loc[(low <= CHANCE) & (high >= CHANCE), "model"].astype(str).tolist()
    n = len(models)
    what = "On a new draw of the other design factors (the population DVGR, which adds item-to-item variation)"
    if not reach:
        return [f"{what} the {hdi}s of {'the model' if n == 1 else f'all {n} models'} stay clear of 0.5."]
    subject = (f"the model's {hdi} reaches" if n == 1 else
               f"the {hdi}s of {'all ' if len(reach) == n else ''}{len(reach)} of {n} models ({_names(reach)}) reach")
    return [f"{what} {subject} 0.5, so on new values, features or contexts the direction is uncertain even "
            "where it is clear on the ones tested."]


def reading(
    models: pd.DataFrame,
    overall: pd.Series,
    *,
    hdi_prob: float,
    diagnostics_ok: bool,
    failures: Sequence[str] = (),
    synthetic: bool = False,
) -> str:
    """One paragraph saying what the numbers mean.

    ``models`` has the per-model rows of ``dvgr.csv``; ``overall`` its ``overall`` row.
    """
    n = len(models)
    hdi = f"{hdi_prob:.0%} HDI"
    below, above = below_chance(models), above_chance(models)
    k_below, k_above = int(below.sum()), int(above.sum())
    names_below = models.loc[below, "model"].astype(str).tolist()
    names_above = models.loc[above, "model"].astype(str).tolist()
    sentences: list[str] = []

    if synthetic:
        sentences.append("These results come from synthetic data, not from real model runs.")
    if n == 1:
        name = models["model"].astype(str).iloc[0]
        if k_below:
            verdict = f"The model, {name}, chooses the deep value less often than chance"
        elif k_above:
            verdict = f"The model, {name}, chooses the deep value more often than chance"
        else:
            verdict = f"We cannot tell whether the model, {name}, chooses the deep value more or less often than chance"
    elif k_below == n:
        verdict = f"All {n} models choose the deep value less often than chance"
    elif k_above == n:
        verdict = f"All {n} models choose the deep value more often than chance"
    elif k_below == 0 and k_above == 0:
        verdict = f"None of the {n} models is credibly below or above chance"
    else:
        parts = []
        if k_below:
            parts.append(f"{k_below} of {n} models ({_names(names_below)}) choose the deep value "
                         "less often than chance")
        if k_above:
            parts.append(f"{k_above} of {n} ({_names(names_above)}) choose it more often than chance")
        rest = n - k_below - k_above
        if rest:
            parts.append(f"for the other {_count(rest, 'model')} the data cannot tell")
        verdict = "; ".join(parts)
        verdict = verdict[0].upper() + verdict[1:]
    sentences.append(f"{verdict} (posterior probability above {CREDIBLE:.0%}).")

    mean = float(overall["dvgr_mean"])
    tenths = round(mean * 10)
    sentences.append(
        f"The overall DVGR is {dvgr(mean)} ({hdi} "
        f"{interval(float(overall['dvgr_hdi_low']), float(overall['dvgr_hdi_high']))}): when a deep value "
        f"and a shallow feature point different ways, the models follow the value in about "
        f"{tenths} of 10 tests."
    )
    if n > 1:
        order = models.sort_values("dvgr_mean")
        low, high = order.iloc[0], order.iloc[-1]
        sentences.append(
            f"Model DVGRs range from {dvgr(float(low['dvgr_mean']))} ({low['model']}) to "
            f"{dvgr(float(high['dvgr_mean']))} ({high['model']})."
        )
    sentences += _population(models, hdi)
    widths = models["dvgr_hdi_high"].astype(float) - models["dvgr_hdi_low"].astype(float)
    wide = models.loc[widths > WIDE, "model"].astype(str).tolist()
    if wide:
        subject = "all models" if len(wide) == n else _names(wide)
        sentences.append(
            f"The intervals are wide for {subject} (up to {widths.max():.2f}); more trials would "
            "be needed for a firm answer."
        )
    if not diagnostics_ok:
        what = f" ({'; '.join(failures)})" if failures else ""
        sentences.append(
            f"However, the sampler checks failed{what}, so these numbers are provisional until the "
            "model is refitted with more tuning or draws."
        )
    return " ".join(sentences)


def condition_reading(
    rates: pd.DataFrame,
    attack: pd.DataFrame | None,
    *,
    words,
    hdi: str,
    diagnostics_ok: bool,
    synthetic: bool = False,
) -> tuple[str, str]:
    """The headline key line (markdown) and paragraph (plain text) of a benchmark judged under conditions (HVSB).

    ``rates``: ``condition_rates.csv`` (model, condition, mean, hdi_low, hdi_high,
    p_below_reference); ``attack``: the targeted - untargeted rows of ``condition_contrasts.csv``
    (None when the run has not both). ``words``: the report's :class:`~dvbstats.report.wording.Wording`.
    """
    reference = words.reference
    key, sentences = [], ["These results come from synthetic data, not from real model runs."] if synthetic else []
    for condition in dict.fromkeys(rates["condition"].astype(str)):
        rows = rates[rates["condition"].astype(str) == condition].sort_values("mean")
        name, n = words.rate_for(condition), len(rows)
        low, high = rows.iloc[0], rows.iloc[-1]
        spread = (f"from {dvgr(float(low['mean']))} ({low['model']}) to {dvgr(float(high['mean']))} ({high['model']})"
                  if n > 1 else f"{dvgr(float(low['mean']))} ({low['model']}; {hdi} "
                  f"{interval(float(low['hdi_low']), float(low['hdi_high']))})")
        key.append(f"**{markup.text(name)}** {dvgr(float(low['mean']))}–{dvgr(float(high['mean']))}")
        sentence = f"Under the {condition} condition the {name} ranges {spread}" if n > 1 else \
            f"Under the {condition} condition the {name} is {spread}"
        if reference is not None:
            above = int((rows["p_below_reference"].astype(float) < 1 - CREDIBLE).sum())
            below = int((rows["p_below_reference"].astype(float) > CREDIBLE).sum())
            sentence += (f"; {above} of {n} models are credibly above {reference:g} ({words.reference_label}) "
                         f"and {below} credibly below it")
        sentences.append(sentence + ".")
    if attack is not None and len(attack):
        up = attack.loc[attack["p_diff_above_0"].astype(float) > CREDIBLE, "model"].astype(str).tolist()
        down = attack.loc[attack["p_diff_below_0"].astype(float) > CREDIBLE, "model"].astype(str).tolist()
        top = attack.sort_values("diff_mean").iloc[-1]
        key.append(f"**{len(up)} of {len(attack)}** models credibly more misaligned under the targeted "
                   "than the untargeted prompt")
        sentences.append(
            f"The targeted prompt raises the rate over the untargeted one for {_count(len(up), 'model')}"
            + (f" ({_names(up)})" if up else "") + f" and lowers it for {_count(len(down), 'model')}"
            + (f" ({_names(down)})" if down else "") + f" (posterior probability above {CREDIBLE:.0%}); the "
            f"largest difference is {float(top['diff_mean']):+.3f} for {top['model']} ({hdi} "
            f"{float(top['diff_hdi_low']):+.3f} to {float(top['diff_hdi_high']):+.3f}).")
    if not diagnostics_ok:
        sentences.append("However, the sampler checks failed, so these numbers are provisional until the model "
                         "is refitted with more tuning or draws.")
    return " · ".join(key), " ".join(sentences)
