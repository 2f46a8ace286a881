"""A design analysis end to end, ``dvb.design(...)``: the design prior, the questions, the sweep, the
recommendation, the full-fit check and the files (the console is :mod:`dvbstats.cli.design`).

    import dvbstats as dvb
    plan = dvb.design("runs/pilot", contrasts=["gpt-4o-gpt-4o-mini"], difference=0.03, items=[500, 1000, 2000, 4000])
    plan.recommendation; plan.table                      # the smallest sufficient design; the sweep
    dvb.design(rates={"A": 0.55, "B": 0.52}, item_sd=1.0, contrasts=["A-B"], out="design/")
    dvb.design("runs/pilot", scaling=True, models=[6, 9, 12, 20], items=[500, 1000, 2000])  # the slope's sign
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from dvbstats import __version__
from dvbstats.benchmarks import BENCHMARKS
from dvbstats.benchmarks.definition import Benchmark
from dvbstats.constants import CREDIBLE, HDI_PROB, SEED
from dvbstats.planning import check as checkmod
from dvbstats.planning import output, prior as priormod
from dvbstats.planning.prior import ARM_SEP, FAMILY_SIZE, DesignError, DesignPrior
from dvbstats.planning.questions import CRITERIA, Question
from dvbstats.planning.sweep import Progress, recommend, sweep

#: Defaults of the sweep (the issue's example).
ITEMS: tuple[int, ...] = (250, 500, 1000, 2000)
SIMS = 200
ASSURANCE = 0.8
#: Numbers of models swept for the scaling slope when none are given.
MODELS: tuple[int, ...] = (6, 9, 12, 20)
#: Whose words stated rates are planned in when no benchmark is named: binary judgments' neutral "rate".
STATED_BENCHMARK = "binary"


@dataclass(frozen=True)
class DesignResult:
    """``table``: the sweep (``design.csv``); ``recommendation``: ``recommendation.json``'s content;
    ``prior``: the design prior; ``checks``: the full-fit check's runs (or None); ``paths``: files written."""

    table: pl.DataFrame
    recommendation: dict
    prior: DesignPrior
    checks: pl.DataFrame | None
    paths: tuple[Path, ...] = ()


def design(
    pilot: str | Path | None = None,
    *,
    rates: Mapping[str, float] | None = None,
    item_sd: float | None = None,
    arm_item_sd: float = 0.0,
    contrasts: Sequence[str] = (),
    conditions: Sequence[str] = (),
    precision: float | None = None,
    scaling: bool = False,
    criterion: str = "hdi",
    difference: float | None = None,
    slope: float | None = None,
    model_sd: float | None = None,
    family_size: int | None = None,
    benchmark: str | Benchmark | None = None,
    rate_name: str | None = None,
    items: Sequence[int] = ITEMS,
    reps: Sequence[int] = (1,),
    models: Sequence[int] = MODELS,
    sims: int = SIMS,
    assurance: float = ASSURANCE,
    check: int = 0,
    seed: int = SEED,
    out: str | Path | None = None,
    section: bool = False,
    progress: Progress | None = None,
) -> DesignResult:
    """Closed-form power and simulated Bayesian assurance of each question over the design points, the
    smallest sufficient design per question, and (``check`` > 0) that design re-estimated by ``check`` full
    fits. ``section``: also add the result as a report section to the pilot's run folder (needs ``out``).
    ``pilot``: a run folder whose posterior is the design prior and whose benchmark sets the words; else
    ``rates`` (per model, or ``MODEL@CONDITION``) with ``item_sd`` (logit scale), worded as ``benchmark``
    (``dvb``, ``hvsb``, ``binary`` with its ``rate_name``, or a :class:`Benchmark`; default
    :data:`STATED_BENCHMARK`). ``scaling``: also ask the
    scaling slope's sign over ``models`` numbers of models (``slope``, ``model_sd``, ``family_size``: stated
    values; with a pilot, each replaces the pilot's). Raises :class:`DesignError` naming the argument."""
    _check_settings(items, reps, sims, assurance, check, precision, difference, criterion)
    _check_scaling(scaling, models, slope, model_sd, family_size)
    if section and (pilot is None or out is None):
        raise DesignError("--section: adds a report section to the --pilot run folder; it needs --pilot and --out")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise DesignError(f"--out {out}: is a file; give a folder (design.csv, recommendation.json and design.png go there)")
    if (pilot is None) == (rates is None):
        raise DesignError("give either a pilot run folder (--pilot) or stated rates (--rate), not both or neither")
    if pilot is not None:
        if benchmark is not None or rate_name is not None:
            raise DesignError("--benchmark, --rate-name: a pilot's own benchmark sets the words; they are for --rate")
        prior = priormod.from_run(pilot)
        if scaling:
            prior = prior.with_slope(slope, model_sd, family_size)
    else:
        if item_sd is None:
            raise DesignError("--item-sd: stated rates need the items' SD on the logit scale (0 if items do not differ)")
        if scaling and slope is None:
            raise DesignError("--slope: the scaling question with stated rates needs the true slope (the change in "
                              "the logit rate per within-family SD of size rank, e.g. -0.2)")
        prior = priormod.stated(rates, tau=item_sd, omega=arm_item_sd,
                                benchmark=_benchmark(benchmark or STATED_BENCHMARK, rate_name),
                                slope=slope if scaling else None, model_sd=model_sd or 0.0,
                                family_size=family_size or FAMILY_SIZE)
    questions = _questions(prior, contrasts, conditions, precision, scaling, criterion)
    if difference is not None:
        first = [q.a for q in questions if q.kind == "contrast"]
        if len(set(first)) < len(first):
            raise DesignError("--difference: an arm is the first of two questions, so its rate cannot be set for both; "
                              "ask them in separate calls")
        for q in questions:
            if q.kind == "contrast":
                prior = prior.with_difference(q.a, q.b, difference)
    table = sweep(prior, questions, sorted(set(items)), sorted(set(reps)), models=sorted(set(models)), sims=sims,
                  seed=seed, progress=progress)
    rec = recommend(table, questions, assurance)
    for q, entry in zip(questions, rec):
        entry["estimand"] = estimand(q, prior)
    checks = None
    if check:
        parts = []
        for q, entry in zip(questions, rec):
            if q.kind == "slope":
                entry["check_note"] = ("not checked: a full fit of the slope is one fit of every model and the "
                                       "trend model per simulated run")
                continue
            chosen = entry["simulation"] or {"items": max(items), "reps": max(reps)}
            parts.append(checkmod.check_runs(prior, q, chosen["items"], chosen["reps"], runs=check, seed=seed,
                                             progress=progress))
            entry["check"] = {"items": chosen["items"], "reps": chosen["reps"]} | checkmod.agreement(parts[-1])
        checks = pl.concat(parts) if parts else None
    b = prior.benchmark
    recommendation = {
        "benchmark": b.name, "rate": b.rate_name, "rate_long": b.rate_long, "direction": direction_words(b),
        "prior": prior.source,
        "prior_draws": prior.n_draws, "item_sd_shared": float(prior.tau.mean()), "item_sd_own": float(prior.omega.mean()),
        "difference": difference, "assurance_target": assurance,
        "items": sorted(set(items)), "reps": sorted(set(reps)), "sims": sims, "seed": seed,
        **({"models": sorted(set(models)), "family_size": prior.trend.family_size, "trend": prior.trend.source,
            "slope_mean": float(prior.trend.slope.mean()), "model_sd_mean": float(prior.trend.model_sd.mean())}
           if scaling else {}),
        "hdi_prob": HDI_PROB, "credible": CREDIBLE, "version": __version__, "questions": rec,
    }
    paths: tuple[Path, ...] = ()
    if out is not None:
        fig = output.figure(prior, questions, table, assurance, seed)
        paths = tuple(output.write(Path(out), table, recommendation, fig, checks))
        if section:
            paths += tuple(output.add_section(Path(pilot), recommendation, paths[2]))
    return DesignResult(table, recommendation, prior, checks, paths)


def _questions(prior: DesignPrior, contrasts: Sequence[str], conditions: Sequence[str], precision: float | None,
               scaling: bool, criterion: str) -> list[Question]:
    questions = [Question("contrast", label, a, b, criterion=criterion)
                 for text in contrasts for label, a, b in priormod.contrast_arms(prior, text)]
    questions += [Question("contrast", label, a, b, criterion=criterion)
                  for text in conditions for label, a, b in priormod.condition_arms(prior, text)]
    if precision is not None:
        questions += [Question("precision", f"precision {arm}", arm, target=precision) for arm in prior.arms]
    if scaling:
        sign = -1 if prior.trend.slope.mean() < 0 else 1
        questions.append(Question("slope", "scaling slope", "slope", criterion=criterion, sign=sign))
    if not questions:
        raise DesignError("nothing to plan: give a question (--contrast A-B, --condition C1-C0, --precision W "
                          "or --scaling)")
    labels = [q.label for q in questions]
    if len(set(labels)) < len(labels):
        raise DesignError(f"a question is asked twice: {', '.join(sorted({x for x in labels if labels.count(x) > 1}))}")
    return questions


def estimand(q: Question, prior: DesignPrior) -> str:
    """The question's estimand in the words of the prior's benchmark (its rate per condition)."""
    b = prior.benchmark

    def rate(arm: str) -> str:
        model, _, condition = arm.partition(ARM_SEP)
        return f"the {b.rate_label(condition or None)} of {model}"

    if q.kind == "slope":
        return f"the change in the logit {b.ranked_rate} per within-family SD of size rank (the scaling slope)"
    if q.kind == "precision":
        return rate(q.a)
    return f"{rate(q.a)} minus {rate(q.b)}"


def direction_words(b: Benchmark) -> str:
    """Which way the benchmark's rate is better, in words ("" when it has no better direction)."""
    return f"{'lower' if b.direction == 'lower' else 'higher'} is better" if b.direction else ""


def _benchmark(name: str | Benchmark, rate_name: str | None) -> Benchmark:
    """The benchmark whose words a stated prior uses: a name of :data:`BENCHMARKS` (with ``rate_name``, one whose
    definition the caller configures: binary judgments) or a :class:`Benchmark`."""
    if isinstance(name, Benchmark):
        return name
    if name not in BENCHMARKS:
        raise DesignError(f"--benchmark: one of {', '.join(BENCHMARKS)}; got {name!r}")
    b = BENCHMARKS[name]
    if rate_name is not None and b.configure is None:
        raise DesignError(f"--rate-name: names the rate of binary judgments; {name} has its own ({b.rate_name})")
    return b.configure(rate_name=rate_name) if rate_name else b


def _check_scaling(scaling, models, slope, model_sd, family_size) -> None:
    """The scaling question's settings, with the argument named."""
    if not scaling:
        if slope is not None or model_sd is not None or family_size is not None:
            raise DesignError("--slope, --model-sd, --family-size: settings of the scaling question; add --scaling")
        return
    if not models or any(not isinstance(m, int) or m < 2 for m in models):
        raise DesignError(f"--models: whole numbers of at least 2 models, comma-separated; got {list(models)}")
    if slope is not None and not np.isfinite(slope):
        raise DesignError(f"--slope: a finite number (logit scale); got {slope}")
    if model_sd is not None and not (np.isfinite(model_sd) and model_sd >= 0):
        raise DesignError(f"--model-sd: a finite number >= 0 (logit scale); got {model_sd}")
    if family_size is not None and (not isinstance(family_size, int) or family_size < 2):
        raise DesignError(f"--family-size: a whole number of at least 2 models per family; got {family_size}")


def _check_settings(items, reps, sims, assurance, check, precision, difference, criterion) -> None:
    """Every setting's range, with the argument named (the CLI's flags)."""
    if not items or any(not isinstance(n, int) or n < 2 for n in items):
        raise DesignError(f"--items: whole numbers of at least 2 items, comma-separated; got {list(items)}")
    if not reps or any(not isinstance(k, int) or k < 1 for k in reps):
        raise DesignError(f"--reps: whole numbers of at least 1 repetition per item, comma-separated; got {list(reps)}")
    if not isinstance(sims, int) or sims < 10:
        raise DesignError(f"--sims: a whole number of at least 10 simulated runs per design point; got {sims}")
    if not 0 < assurance < 1:
        raise DesignError(f"--assurance: a probability strictly between 0 and 1; got {assurance}")
    if not isinstance(check, int) or check < 0:
        raise DesignError(f"--check: a whole number of full fits (0 for none); got {check}")
    if precision is not None and not 0 < precision < 0.5:
        raise DesignError(f"--precision: an HDI half-width on the rate scale, strictly between 0 and 0.5; got {precision}")
    if difference is not None and not -1 < difference < 1:
        raise DesignError(f"--difference: a difference of rates strictly between -1 and 1; got {difference}")
    if criterion not in CRITERIA:
        raise DesignError(f"--criterion: one of {', '.join(CRITERIA)}; got {criterion!r}")
