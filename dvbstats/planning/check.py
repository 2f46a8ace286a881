"""The approximation checked against the package's full fits: independent simulated runs at a design point,
each analysed both ways (:func:`dvbstats.planning.assurance.paired_estimates` and
:func:`~dvbstats.planning.assurance.full_fit_estimates`); the assurance by full fits, and how closely the two
analyses agree run by run."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl

from dvbstats.constants import DRAWS, TUNE
from dvbstats.planning import assurance as sim
from dvbstats.planning.prior import DesignPrior
from dvbstats.planning.questions import Question
from dvbstats.planning.sweep import Progress


def check_rows(prior: DesignPrior, question: Question, n_items: int, reps: int, *, runs: int, seed: int,
               start: int = 0, draws: int = DRAWS, tune: int = TUNE, chains: int = 4,
               progress: Progress | None = None) -> Iterator[dict]:
    """Runs ``start`` to ``runs - 1`` of ``runs`` fresh simulated runs (truths drawn from ``prior`` with a
    seed the sweep does not use; the same runs whatever ``start``, so a check can be finished later), each
    fitted by the package: one row per run, as it is fitted, with both analyses' estimate, SD and success."""
    truths = prior.resampled(runs, seed + 99_991)
    arms = tuple(prior.arms) if question.b is None else (question.a, question.b)  # a rate: in a run of every arm
    simulated = sim.simulate_runs(truths, arms, n_items, reps, seed=seed + 99_989)
    approx, approx_se = sim.paired_estimates(simulated, question)
    for k in range(start, runs):
        settings = {"seed": seed, "draws": draws, "tune": tune, "chains": chains}
        try:
            full, full_sd, ok, items = sim.full_fit_estimates(simulated, question, k, **settings)
        except BaseException as exc:  # nutpie re-raises a panic of a sampler thread as a BaseException
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            full, full_sd, ok, items = sim.full_fit_estimates(simulated, question, k, backend="fastlogp", **settings)
            items += f" (the item-marginal fit failed: {type(exc).__name__}: {str(exc)[:120]})"
        yield {"question": question.label, "items": n_items, "reps": reps, "run": k,
               "approx_estimate": float(approx[k]), "approx_se": float(approx_se[k]),
               "full_estimate": full, "full_sd": full_sd, "full_checks_ok": ok, "item_effects": items,
               "approx_success": bool(question.success(approx[k:k + 1], approx_se[k:k + 1])[0]),
               "full_success": bool(question.success(np.array([full]), np.array([full_sd]))[0])}
        if progress:
            progress(k + 1, runs, f"check {question.label}, {n_items} items x {reps}: full fit {k + 1} of {runs}")


def check_runs(prior: DesignPrior, question: Question, n_items: int, reps: int, *, runs: int, seed: int,
               progress: Progress | None = None) -> pl.DataFrame:
    """Every run of :func:`check_rows` at the package's default draws, as a table."""
    return pl.DataFrame(list(check_rows(prior, question, n_items, reps, runs=runs, seed=seed, progress=progress)))


def agreement(checks: pl.DataFrame) -> dict:
    """Assurance by full fits and by the approximation on the same runs (with MC SEs), the share of runs
    where the two decide alike, the largest and mean |difference of estimates| in units of the full
    posterior SD, and the median ratio of the SEs (approximate / full)."""
    full, approx = (sim.assurance(checks[c].to_numpy()) for c in ("full_success", "approx_success"))
    z = ((checks["approx_estimate"] - checks["full_estimate"]).abs() / checks["full_sd"]).to_numpy()
    return {"runs": checks.height, "full_fit_assurance": full[0], "full_fit_mc_se": full[1],
            "approx_assurance": approx[0], "approx_mc_se": approx[1],
            "decisions_agree": float((checks["full_success"] == checks["approx_success"]).mean()),
            "max_abs_estimate_diff_sd": float(z.max()), "mean_abs_estimate_diff_sd": float(z.mean()),
            "median_se_ratio": float((checks["approx_se"] / checks["full_sd"]).median()),
            "full_fits_passing_checks": int(checks["full_checks_ok"].sum())}
