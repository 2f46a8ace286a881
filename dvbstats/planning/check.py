"""The approximation checked against the package's full fits: independent simulated runs at a design point,
each analysed both ways (:func:`dvbstats.planning.assurance.paired_estimates` and
:func:`~dvbstats.planning.assurance.full_fit_estimates`); the assurance by full fits, and how closely the two
analyses agree run by run."""

from __future__ import annotations

import numpy as np
import polars as pl

from dvbstats.planning import assurance as sim
from dvbstats.planning.prior import DesignPrior
from dvbstats.planning.questions import Question
from dvbstats.planning.sweep import Progress


def check_runs(prior: DesignPrior, question: Question, n_items: int, reps: int, *, runs: int, seed: int,
               progress: Progress | None = None) -> pl.DataFrame:
    """``runs`` fresh simulated runs (truths drawn from ``prior`` with a seed the sweep does not use), each
    fitted by the package: one row per run with both analyses' estimate, SD and success."""
    draws = prior.resampled(runs, seed + 99_991)
    arms = tuple(prior.arms) if question.b is None else (question.a, question.b)  # a rate: in a run of every arm
    simulated = sim.simulate_runs(draws, arms, n_items, reps, seed=seed + 99_989)
    approx, approx_se = sim.paired_estimates(simulated, question)
    rows = []
    for k in range(runs):
        full, full_sd, ok = sim.full_fit_estimates(simulated, question, k, seed=seed)
        rows.append({"question": question.label, "items": n_items, "reps": reps, "run": k,
                     "approx_estimate": float(approx[k]), "approx_se": float(approx_se[k]),
                     "full_estimate": full, "full_sd": full_sd, "full_checks_ok": ok,
                     "approx_success": bool(question.success(approx[k:k + 1], approx_se[k:k + 1])[0]),
                     "full_success": bool(question.success(np.array([full]), np.array([full_sd]))[0])})
        if progress:
            progress(k + 1, runs, f"check {question.label}, {n_items} items x {reps}: full fit {k + 1} of {runs}")
    return pl.DataFrame(rows)


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
