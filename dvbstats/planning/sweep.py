"""The sweep over design points and the recommendation: for every question, items x repetitions (and for the
scaling slope, x models), the closed-form power beside the simulation-based assurance; the smallest design
that reaches the target."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from dvbstats.planning import assurance as sim
from dvbstats.planning import closed_form, slope
from dvbstats.planning.prior import DesignPrior
from dvbstats.planning.questions import Question

#: Columns of the sweep table (``design.csv``).
COLUMNS: tuple[str, ...] = ("question", "kind", "a", "b", "criterion", "models", "items", "reps", "trials_per_arm",
                            "trials", "method", "assurance", "mc_se", "n_sims", "expected_estimate", "expected_se")

Progress = Callable[[int, int, str], None]


def sweep(prior: DesignPrior, questions: Sequence[Question], items: Sequence[int], reps: Sequence[int], *,
          models: Sequence[int] = (), sims: int, seed: int, progress: Progress | None = None) -> pl.DataFrame:
    """Closed-form power and simulated assurance of every question at every (items, reps) design point, and
    for a slope question at every (models, items, reps) point (``models``: the numbers of models to sweep).

    ``sims`` simulated runs per point, their truths drawn from ``prior`` (the same draws at every point of a
    question, so the curves are smooth in the size); the closed form is averaged over the same draws.
    ``models`` is null in the rows of other questions (a paired contrast does not depend on it); ``trials`` is
    the run's trials for the question (arms or models x items x repetitions).
    """
    draws = prior.resampled(sims, seed)
    points = [(q, m, k, n) for q in questions for m in (models if q.kind == "slope" else (None,))
              for k in reps for n in items]
    rows = []
    for done, (q, m, k, n) in enumerate(points, start=1):
        arms = m if m is not None else (1 if q.b is None else 2)
        point_seed = seed + 1000 * questions.index(q) + 7 * n + k + 13 * (m or 0)
        estimate, se = simulated_estimates(draws, q, n, k, m, point_seed)
        a, a_se = sim.assurance(q.success(estimate, se))
        cf = closed_form_power(draws, q, n, k, m)
        base = {"question": q.label, "kind": q.kind, "a": q.a, "b": q.b, "criterion": _criterion(q), "models": m,
                "items": n, "reps": k, "trials_per_arm": n * k, "trials": arms * n * k, "n_sims": sims,
                "expected_estimate": float(estimate.mean()), "expected_se": float(se.mean())}
        rows.append(base | {"method": "closed_form", "assurance": float(cf.mean()),
                            "mc_se": float(cf.std(ddof=1) / np.sqrt(len(cf))) if len(cf) > 1 else 0.0})
        rows.append(base | {"method": "simulation", "assurance": a, "mc_se": a_se})
        if progress:
            where = f"{m} models x {n} items x {k}" if m is not None else f"{n} items x {k}"
            progress(done, len(points), f"{q.label}: {where}: assurance {a:.2f} (MC SE {a_se:.2f}), "
                                        f"closed form {cf.mean():.2f}")
    return pl.DataFrame(rows, schema_overrides={"b": pl.String, "models": pl.Int64}).select(COLUMNS)


def simulated_estimates(draws: DesignPrior, q: Question, n_items: int, reps: int, models: int | None,
                        seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One simulated run per draw at the design point, analysed: the estimate and SE (posterior SD) of the
    question's estimand per run."""
    if q.kind == "slope":
        return slope.simulated_estimates(draws, models, n_items, reps, seed)
    runs = sim.simulate_runs(draws, (q.a,) if q.b is None else (q.a, q.b), n_items, reps, seed=seed)
    return sim.paired_estimates(runs, q)


def closed_form_power(draws: DesignPrior, q: Question, n_items: int, reps: int, models: int | None) -> np.ndarray:
    """The closed form's P(success) per draw at the design point."""
    if q.kind == "slope":
        return slope.power(draws, q, models, n_items, reps)
    return closed_form.power(draws, q, n_items, reps)


def _criterion(q: Question) -> str:
    return f"precision<{q.target:g}" if q.kind == "precision" else q.criterion


def recommend(table: pl.DataFrame, questions: Sequence[Question], target: float) -> list[dict]:
    """Per question, the smallest sufficient design: the fewest trials (arms or models x items x repetitions;
    ties: fewer items) whose simulated assurance reaches ``target``, and the closed form's answer beside it;
    ``None`` with the largest assurance seen when no design point of the sweep reaches it."""
    out = []
    for q in questions:
        rows = table.filter(pl.col("question") == q.label).sort("trials", "items")
        entry = {"question": q.label, "kind": q.kind, "a": q.a, "b": q.b, "rule": q.rule, "target": target}
        for method in ("simulation", "closed_form"):
            r = rows.filter(pl.col("method") == method)
            ok = r.filter(pl.col("assurance") >= target)
            if ok.height:
                best = ok.row(0, named=True)
                entry[method] = {"items": best["items"], "reps": best["reps"], "assurance": best["assurance"],
                                 "mc_se": best["mc_se"]} | ({"models": best["models"]} if q.kind == "slope" else {})
            else:
                top = r.sort("assurance", descending=True).row(0, named=True)
                entry[method] = None
                where = f"{top['models']} models x " if q.kind == "slope" else ""
                entry[f"{method}_note"] = (f"no design point reaches {target:g}: the largest assurance is "
                                           f"{top['assurance']:.3f} at {where}{top['items']} items x {top['reps']}")
        out.append(entry)
    return out
