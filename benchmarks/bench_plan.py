"""Does the sampling plan (``dvbstats.model.plan``) pass its checks, and at what cost, on the designs that motivated it?

Each design is fitted with each ``--config``, one fit after another in this process, and one CSV row is
appended to ``--out`` per sampler run (an executed plan gives one row per attempt it ran):

* ``plan``: what a default fit does (``parametrization="auto"``, the benchmark's measured form where it
  has one): the plan's first attempt, then its fallbacks while the checks fail;
* ``first``: the plan's first attempt alone (no fallbacks);
* ``pilot``: issue 19's alternative to the depth rules: a short pilot (2 chains, 200 tuning, 100 draws) in each
  candidate form (the rule's, ``zerosum``, ``zerosum_noncentered`` and, with slopes, ``zerosum_slopes_noncentered``)
  at its default target acceptance; the form with the fewest divergences, then the fewest leapfrog steps per draw,
  is sampled in full (one row per pilot, ``attempt`` ``pilot``, then the full fit; ``cpu_s`` covers all). A
  default fit's own pilots (``dvbstats.model.plan.candidates``) are rows with ``attempt`` ``plan's pilot``;
* ``form=<parametrization>[,ta=<target acceptance>]``: one fixed form (and target acceptance).

Designs, simulated here (independently of ``dvbstats.simulate``) unless said otherwise:

* ``slopes8``: 8 models x 2 conditions x 11 values, 400 trials per cell (70,400 trials),
  ``outcome ~ 1 + condition + (1 + condition|model) + (1|value)`` (issue 19's case);
* ``hvsb12``: an HVSB-like tree of the paper's design, 12 models x 2,000 items (40 scenario types of 50)
  x 3 conditions, one judgment per cell, 5% unparsed; per-model attack slopes shared by both attack prompts;
  HVSB's default formula (its measured form applies);
* ``math500``: the real MATH-500 matrix (tests/data/real/wide/math500_lart.csv, read by the wide reader),
  ``outcome ~ 1 + condition + (1 + condition|model) + (1|item)``;
* ``depth<N>``: the DVB example's effects with N prompts per model (``bench_depth.py``'s data), default formula;
* ``dvbslopes<N>``: the same data with ``(1 + log_n_train|model)`` (``bench_slopes.py``'s formula; the slopes barely
  vary, where centred slope columns diverged).

Row fields: design, seed, config, attempt, form, terms, target_accept, draws (per chain), low_rank, backend, ok, divergences,
max_r_hat, min_ess_bulk, min_ess_tail, steps_per_draw, sample_s, wall_s and cpu_s of the whole config (process
CPU, nutpie's threads included; the same on every row of one config), failures.

    nice -n 10 .venv/bin/python benchmarks/bench_plan.py --design slopes8 --seeds 1 2 3 \\
        --config plan --config form=zerosum_noncentered --out benchmarks/out/plan.csv
    .venv/bin/python benchmarks/bench_plan.py --table benchmarks/out/plan.csv   # docs/model.md's table
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing the package

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from scipy.special import expit  # noqa: E402

from dvbstats import api  # noqa: E402
from dvbstats.benchmarks.hvsb import HVSB  # noqa: E402
from dvbstats.input.cells import CellTable  # noqa: E402
from dvbstats.model import formula as formulas  # noqa: E402
from dvbstats.model import plan as plans  # noqa: E402
from dvbstats.model.design import design  # noqa: E402
from dvbstats.model.sample import SamplerSettings  # noqa: E402
from dvbstats.results.fitted import fit  # noqa: E402
from dvbstats.simulate import example  # noqa: E402

MATRIX = ROOT / "tests" / "data" / "real" / "wide" / "math500_lart.csv"
PATTERN = "(?P<model>.+)_(?P<condition>zero_shot|one_shot)"
SLOPES8 = "outcome ~ 1 + condition + (1 + condition|model) + (1|value)"
DVB_SLOPES = "chose_deep ~ 1 + log_n_train + (1 + log_n_train|model) + (1|value) + (1|feature) + (1|context)"
FIELDS = ("design", "seed", "config", "attempt", "form", "terms", "target_accept", "draws", "low_rank", "backend", "ok",
          "divergences", "max_r_hat", "min_ess_bulk", "min_ess_tail", "steps_per_draw", "sample_s", "wall_s", "cpu_s",
          "failures")


def cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def slopes8(seed: int) -> CellTable:
    """8 models x 2 conditions x 11 values, 400 trials per cell; per-model intercepts and condition slopes
    (SDs 0.8 and 0.3, correlation 0.3), value SD 0.5, condition effect 0.4."""
    rng = np.random.default_rng(seed)
    sd, cor = np.array([0.8, 0.3]), 0.3
    cov = np.outer(sd, sd) * np.array([[1, cor], [cor, 1]])
    model = rng.multivariate_normal([0, 0], cov, size=8)
    value = rng.normal(0, 0.5, size=11)
    rows = [(f"m{m}", c, f"v{v}", 400) for m in range(8) for c in ("A", "B") for v in range(11)]
    df = pl.DataFrame(rows, schema=["model", "condition", "value", "n_trials"], orient="row")
    m = df["model"].str.slice(1).cast(pl.Int64).to_numpy()
    b = (df["condition"] == "B").to_numpy().astype(float)
    v = df["value"].str.slice(1).cast(pl.Int64).to_numpy()
    eta = 0.3 + model[m, 0] + (0.4 + model[m, 1]) * b + value[v]
    df = df.with_columns(n_prompts=pl.col("n_trials"), n_deep=pl.Series(rng.binomial(400, expit(eta))))
    return CellTable(df.select("model", "condition", "value", "n_prompts", "n_trials", "n_deep"),
                     ("model", "condition", "value"))


def hvsb12(seed: int) -> CellTable:
    """12 models x 2,000 items (40 scenario types of 50) x 3 conditions, one judgment per cell, 5% unparsed.
    Truth: intercept -1.2, untargeted +0.4, targeted +1.0; per model an intercept (SD 0.8) and one attack slope
    shared by both attack prompts (SD 0.5, correlation 0.3 with the intercept); scenario-type SD 0.5; item SD 1."""
    rng = np.random.default_rng(seed)
    n_models, n_types, per_type = 12, 40, 50
    cov = np.outer([0.8, 0.5], [0.8, 0.5]) * np.array([[1, 0.3], [0.3, 1]])
    model = rng.multivariate_normal([0, 0], cov, size=n_models)
    stype, item = rng.normal(0, 0.5, n_types), rng.normal(0, 1.0, n_types * per_type)
    conditions = np.array(["none", "untargeted", "targeted"])
    m, c, i = (a.ravel() for a in np.meshgrid(np.arange(n_models), np.arange(3), np.arange(n_types * per_type),
                                               indexing="ij"))
    attack = (c > 0).astype(float)
    eta = -1.2 + np.array([0, 0.4, 1.0])[c] + model[m, 0] + attack * model[m, 1] + stype[i // per_type] + item[i]
    used = rng.random(m.size) >= 0.05
    df = pl.DataFrame({
        "model": [f"m{k:02d}" for k in m], "condition": conditions[c], "scenario_type": [f"s{k}" for k in i // per_type],
        "item": [f"s{a}:{b}" for a, b in zip(i // per_type, i)], "n_prompts": np.ones(m.size, np.int64),
        "n_trials": used.astype(np.int64), "n_deep": (used & (rng.random(m.size) < expit(eta))).astype(np.int64)})
    return CellTable(df, ("model", "condition", "scenario_type", "item"))


def load(name: str, seed: int) -> tuple[formulas.Formula, CellTable, str | None]:
    """The formula, cells and measured form (``Benchmark.forms``) of design ``name``."""
    if name == "slopes8":
        return formulas.parse(SLOPES8), slopes8(seed), None
    if name == "hvsb12":
        text = HVSB.default_formula
        return formulas.parse(text), hvsb12(seed), HVSB.forms.get(text)
    if name == "math500":
        data = api.load(str(MATRIX), wide="model", label_pattern=PATTERN, benchmark="binary")
        model = api.Model("outcome ~ 1 + condition + (1 + condition|model) + (1|item)", data)
        return model.formula, model.cells, None
    if name.startswith("dvbslopes"):
        f = formulas.parse(DVB_SLOPES)
        return f, example.at_depth(int(name.removeprefix("dvbslopes")), seed, f.variables), None
    if name.startswith("depth"):
        f = formulas.parse(formulas.DEFAULT_FORMULA)
        return f, example.at_depth(int(name.removeprefix("depth")), seed, f.variables), None
    raise SystemExit(f"unknown design {name!r}")


#: Candidate forms of ``--config pilot`` beside the rule's (``auto``).
CANDIDATES = ("auto", "zerosum", "zerosum_noncentered", "zerosum_slopes_noncentered")


def pilot(f: formulas.Formula, cells: CellTable, seed: int, measured: str | None) -> tuple[str, list]:
    """The form a short pilot run prefers (fewest divergences, then fewest steps per draw), and the pilot fits."""
    d = design(f, cells)
    first = plans.first_form(d, "auto", measured)
    forms = [first] + [c for c in CANDIDATES if c not in (first, "auto") and (d.slopes or "slopes" not in c)]
    fits = [(form, fit(f, cells, settings=SamplerSettings(seed=seed, draws=100, tune=200, chains=2),
                       parametrization=form, progress=False)) for form in forms]
    score = {form: (res.diagnostics.divergences, res.sampling.attempts[0]["steps_per_draw"]) for form, res in fits}
    return min(score, key=score.get), fits


def run(name: str, seed: int, config: str, draws: int, tune: int) -> list[dict]:
    f, cells, measured = load(name, seed)
    settings = SamplerSettings(seed=seed, draws=draws, tune=tune)
    options = dict(p.split("=", 1) for p in config.split(",") if "=" in p)
    if config == "first":
        first = plans.plan(design(f, cells), measured_form=measured).first
        options = {"form": first.parametrization, "ta": str(first.target_accept)}
    t, c = time.perf_counter(), cpu()
    pilots = []
    if config == "pilot":
        chosen, pilots = pilot(f, cells, seed, measured)
        options = {"form": chosen}
    if "form" in options:
        settings = SamplerSettings(seed=seed, draws=draws, tune=tune, target_accept=float(options["ta"])
                                   if "ta" in options else None)
        res = fit(f, cells, settings=settings, parametrization=options["form"], progress=False)
    else:
        res = fit(f, cells, settings=settings, progress=False, measured_form=measured)
    wall, used = time.perf_counter() - t, cpu() - c
    rows = [{"design": name, "seed": seed, "config": config, "attempt": "plan's pilot", "form": form,
             "divergences": figures["divergences"], "steps_per_draw": figures["steps_per_draw"],
             "sample_s": figures["sample_s"], "wall_s": round(wall, 1), "cpu_s": round(used, 1)}
            for form, figures in res.sampling.plan.pilots.items()]
    attempts = [("pilot", p.sampling.attempts[0]) for _, p in pilots]
    attempts += [(f"{k}/{len(res.sampling.attempts)}", a) for k, a in enumerate(res.sampling.attempts, start=1)]
    for k, tried in attempts:
        s = tried["diagnostics"]
        rows.append({
            "design": name, "seed": seed, "config": config, "attempt": k,
            "form": tried["parametrization"], "terms": json.dumps(tried["terms"]),
            "target_accept": tried["target_accept"], "draws": tried["draws"], "low_rank": tried["low_rank"], "backend": tried["backend"],
            "ok": s["ok"], "divergences": s["divergences"], "max_r_hat": round(s["max_r_hat"], 4),
            "min_ess_bulk": round(s["min_ess_bulk"]), "min_ess_tail": round(s["min_ess_tail"]),
            "steps_per_draw": tried["steps_per_draw"], "sample_s": round(tried["sample_s"], 1),
            "wall_s": round(wall, 1), "cpu_s": round(used, 1), "failures": "; ".join(s["failures"])})
    return rows


def append_csv(out: Path, rows: list[dict], fields: tuple[str, ...]) -> None:
    """Append ``rows`` to the CSV ``out`` (its header first when the file is new), so a sweep cut short keeps its rows."""
    new = not out.exists()
    with out.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        if new:
            w.writeheader()
        w.writerows(rows)


def table(path: Path) -> str:
    """The rows of ``path`` as the markdown table of docs/model.md: per design, seed and config, each pilot and
    attempt, the kept fit's checks and the config's CPU seconds."""
    d = pl.read_csv(path, infer_schema_length=0)
    lines = ["| data | seed | config | pilots, then attempts (form at target acceptance x draws: checks) | kept fit: "
             "max R-hat, min bulk ESS, divergences, steps per draw | CPU s |", "|---|---|---|---|---|---|"]
    for (data, seed, config), g in d.group_by(["design", "seed", "config"], maintain_order=True):
        steps, kept = [], None
        for r in g.iter_rows(named=True):
            if "pilot" in r["attempt"]:
                steps.append(f"pilot `{r['form']}`: {r['divergences']} div., {r['steps_per_draw']} steps per draw")
                continue
            kept = r
            steps.append(f"`{r['form']}` at {r['target_accept']} x{r.get('draws') or 1000}: "
                         + ("pass" if r["ok"] == "True" else f"**fail** ({r['failures']})"))
        lines.append(f"| {data} | {seed} | {config} | {'; '.join(steps)} | "
                     f"{'pass' if kept['ok'] == 'True' else '**fail**'}: {kept['max_r_hat']}, {kept['min_ess_bulk']}, "
                     f"{kept['divergences']}, {kept['steps_per_draw']} | {kept['cpu_s']} |")
    return "\n".join(line.replace("[model|", "[model\\|") for line in lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", help="print the markdown table of this CSV (docs/model.md) and stop")
    p.add_argument("--design", nargs="+", help="slopes8, hvsb12, math500, depth<N> (prompts per model)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--config", action="append", default=[], help="plan, first or form=<name>[,ta=<x>] (repeatable)")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=500)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "plan.csv"))
    args = p.parse_args()
    if args.table:
        print(table(Path(args.table)))
        return
    if not args.design:
        p.error("--design is required")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.design:
        for seed in args.seeds:
            for config in args.config or ["plan"]:
                rows = run(name, seed, config, args.draws, args.tune)
                append_csv(out, rows, FIELDS)
                for r in rows:
                    if "ok" not in r:
                        print(f"  plan's pilot {r['form']}: {r['divergences']} divergences, {r['steps_per_draw']} "
                              "steps/draw", flush=True)
                        continue
                    print(f"{time.strftime('%H:%M:%S')} {name} seed {seed} [{config}] attempt {r['attempt']}: "
                          f"{r['form']} at {r['target_accept']}, ok {r['ok']}, div {r['divergences']}, R-hat "
                          f"{r['max_r_hat']}, bulk ESS {r['min_ess_bulk']}, {r['steps_per_draw']} steps/draw, "
                          f"sample {r['sample_s']} s; config wall {r['wall_s']} s, CPU {r['cpu_s']} s", flush=True)


if __name__ == "__main__":
    main()
