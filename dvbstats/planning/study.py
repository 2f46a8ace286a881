"""A design analysis end to end, ``dvb.design(...)``: the design prior, the questions, the sweep, the
recommendation, the full-fit check and the files (the console is :mod:`dvbstats.cli.design`).

    import dvbstats as dvb
    plan = dvb.design("runs/pilot", contrasts=["gpt-4o-gpt-4o-mini"], difference=0.03, items=[500, 1000, 2000, 4000])
    plan.recommendation; plan.table                      # the smallest sufficient design; the sweep
    dvb.design(rates={"A": 0.55, "B": 0.52}, item_sd=1.0, contrasts=["A-B"], out="design/")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from dvbstats import __version__
from dvbstats.constants import CREDIBLE, HDI_PROB, SEED
from dvbstats.planning import check as checkmod
from dvbstats.planning import output, prior as priormod
from dvbstats.planning.prior import DesignError, DesignPrior
from dvbstats.planning.questions import CRITERIA, Question
from dvbstats.planning.sweep import Progress, recommend, sweep

#: Defaults of the sweep (the issue's example).
ITEMS: tuple[int, ...] = (250, 500, 1000, 2000)
SIMS = 200
ASSURANCE = 0.8


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
    criterion: str = "hdi",
    difference: float | None = None,
    items: Sequence[int] = ITEMS,
    reps: Sequence[int] = (1,),
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
    ``pilot``: a run folder whose posterior is the design prior; else ``rates`` (per model, or
    ``MODEL@CONDITION``) with ``item_sd`` (logit scale). Raises :class:`DesignError` naming the argument."""
    _check_settings(items, reps, sims, assurance, check, precision, difference, criterion)
    if section and (pilot is None or out is None):
        raise DesignError("--section: adds a report section to the --pilot run folder; it needs --pilot and --out")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise DesignError(f"--out {out}: is a file; give a folder (design.csv, recommendation.json and design.png go there)")
    if (pilot is None) == (rates is None):
        raise DesignError("give either a pilot run folder (--pilot) or stated rates (--rate), not both or neither")
    if pilot is not None:
        prior = priormod.from_run(pilot)
    else:
        if item_sd is None:
            raise DesignError("--item-sd: stated rates need the items' SD on the logit scale (0 if items do not differ)")
        prior = priormod.stated(rates, tau=item_sd, omega=arm_item_sd)
    questions = _questions(prior, contrasts, conditions, precision, criterion)
    if difference is not None:
        first = [q.a for q in questions if q.kind == "contrast"]
        if len(set(first)) < len(first):
            raise DesignError("--difference: an arm is the first of two questions, so its rate cannot be set for both; "
                              "ask them in separate calls")
        for q in questions:
            if q.kind == "contrast":
                prior = prior.with_difference(q.a, q.b, difference)
    table = sweep(prior, questions, sorted(set(items)), sorted(set(reps)), sims=sims, seed=seed, progress=progress)
    rec = recommend(table, questions, assurance)
    checks = None
    if check:
        parts = []
        for q, entry in zip(questions, rec):
            chosen = entry["simulation"] or {"items": max(items), "reps": max(reps)}
            parts.append(checkmod.check_runs(prior, q, chosen["items"], chosen["reps"], runs=check, seed=seed,
                                             progress=progress))
            entry["check"] = {"items": chosen["items"], "reps": chosen["reps"]} | checkmod.agreement(parts[-1])
        checks = pl.concat(parts)
    recommendation = {
        "benchmark": prior.benchmark.name, "rate": prior.benchmark.rate_name, "prior": prior.source,
        "prior_draws": prior.n_draws, "item_sd_shared": float(prior.tau.mean()), "item_sd_own": float(prior.omega.mean()),
        "difference": difference, "assurance_target": assurance,
        "items": sorted(set(items)), "reps": sorted(set(reps)), "sims": sims, "seed": seed,
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
               criterion: str) -> list[Question]:
    questions = [Question("contrast", label, a, b, criterion=criterion)
                 for text in contrasts for label, a, b in priormod.contrast_arms(prior, text)]
    questions += [Question("contrast", label, a, b, criterion=criterion)
                  for text in conditions for label, a, b in priormod.condition_arms(prior, text)]
    if precision is not None:
        questions += [Question("precision", f"precision {arm}", arm, target=precision) for arm in prior.arms]
    if not questions:
        raise DesignError("nothing to plan: give a question (--contrast A-B, --condition C1-C0 or --precision W)")
    labels = [q.label for q in questions]
    if len(set(labels)) < len(labels):
        raise DesignError(f"a question is asked twice: {', '.join(sorted({x for x in labels if labels.count(x) > 1}))}")
    return questions


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
