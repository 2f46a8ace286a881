"""The sweep over design points and the recommendation: for every question, items x repetitions, the
closed-form power beside the simulation-based assurance; the smallest design that reaches the target."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from dvbstats.planning import assurance as sim
from dvbstats.planning import closed_form
from dvbstats.planning.prior import DesignPrior
from dvbstats.planning.questions import Question

#: Columns of the sweep table (``design.csv``).
COLUMNS: tuple[str, ...] = ("question", "kind", "a", "b", "criterion", "items", "reps", "trials_per_arm",
                            "method", "assurance", "mc_se", "n_sims", "expected_estimate", "expected_se")

Progress = Callable[[int, int, str], None]


def sweep(prior: DesignPrior, questions: Sequence[Question], items: Sequence[int], reps: Sequence[int], *,
          sims: int, seed: int, progress: Progress | None = None) -> pl.DataFrame:
    """Closed-form power and simulated assurance of every question at every (items, reps) design point.

    ``sims`` simulated runs per point, their truths drawn from ``prior`` (the same draws at every point of a
    question, so the curves are smooth in the size); the closed form is averaged over the same draws.
    """
    draws = prior.resampled(sims, seed)
    rows, total, done = [], len(questions) * len(items) * len(reps), 0
    for qi, q in enumerate(questions):
        arms = (q.a,) if q.b is None else (q.a, q.b)
        for k in reps:
            for n in items:
                runs = sim.simulate_runs(draws, arms, n, k, seed=seed + 1000 * qi + 7 * n + k)
                estimate, se = sim.paired_estimates(runs, q)
                a, a_se = sim.assurance(q.success(estimate, se))
                cf = closed_form.power(draws, q, n, k)
                base = {"question": q.label, "kind": q.kind, "a": q.a, "b": q.b, "criterion": _criterion(q),
                        "items": n, "reps": k, "trials_per_arm": n * k, "n_sims": sims,
                        "expected_estimate": float(estimate.mean()), "expected_se": float(se.mean())}
                rows.append(base | {"method": "closed_form", "assurance": float(cf.mean()),
                                    "mc_se": float(cf.std(ddof=1) / np.sqrt(len(cf))) if len(cf) > 1 else 0.0})
                rows.append(base | {"method": "simulation", "assurance": a, "mc_se": a_se})
                done += 1
                if progress:
                    progress(done, total, f"{q.label}: {n} items x {k}: assurance {a:.2f} (MC SE {a_se:.2f}), "
                                          f"closed form {cf.mean():.2f}")
    return pl.DataFrame(rows, schema_overrides={"b": pl.String}).select(COLUMNS)


def _criterion(q: Question) -> str:
    return f"precision<{q.target:g}" if q.kind == "precision" else q.criterion


def recommend(table: pl.DataFrame, questions: Sequence[Question], target: float) -> list[dict]:
    """Per question, the smallest sufficient design: the fewest trials per arm (items x repetitions) whose
    simulated assurance reaches ``target``, and the closed form's answer beside it; ``None`` with the
    largest assurance seen when no design point of the sweep reaches it."""
    out = []
    for q in questions:
        rows = table.filter(pl.col("question") == q.label).sort("trials_per_arm", "items")
        entry = {"question": q.label, "kind": q.kind, "a": q.a, "b": q.b, "rule": q.rule, "target": target}
        for method in ("simulation", "closed_form"):
            r = rows.filter(pl.col("method") == method)
            ok = r.filter(pl.col("assurance") >= target)
            if ok.height:
                best = ok.row(0, named=True)
                entry[method] = {"items": best["items"], "reps": best["reps"], "assurance": best["assurance"],
                                 "mc_se": best["mc_se"]}
            else:
                top = r.sort("assurance", descending=True).row(0, named=True)
                entry[method] = None
                entry[f"{method}_note"] = (f"no design point reaches {target:g}: the largest assurance is "
                                           f"{top['assurance']:.3f} at {top['items']} items x {top['reps']}")
        out.append(entry)
    return out
