"""Does a shorter warm-up (``--tune``, e.g. nutpie's own 300-400 against the package's 500) keep every default fit
passing its checks, across designs, sizes and seeds, and what does it save?

Each design and seed is fitted as a default fit does (``fit`` with the sampling plan: its first attempt, then its
fallbacks while the checks fail), once per tuning length, in this process, one after another. One CSV row per
fit: the first attempt's checks (R-hat <= 1.01, bulk and tail ESS >= 400, no divergences), the kept fit's, the
attempts made, leapfrog steps per draw, sampling seconds and the process CPU seconds of the whole fit (nutpie's
threads included; the machine may be shared: compare CPU within a design and seed).

Designs: ``bench_plan.py``'s (``slopes8``, ``hvsb12``, ``math500``, ``depth<N>``, ``dvbslopes<N>``) and

* ``dvb``: the embedded DVB example (9 models x 12,000 prompts), default formula;
* ``dvbitems<N>``: the example's effects with N prompts per model and a per-prompt effect (SD 0.5) shared by the
  models, default formula + ``(1|prompt)`` (the DVB-items target's form at another size);
* ``hvsbtree<M>``: a simulated HVSB tree of M of the example's models, 4 datasets x 100 items (2 scenario types
  each), HVSB's default formula (the calibration's small trees);
* ``hvsb``: the embedded HVSB example, HVSB's default formula;
* ``rasch<M>x<I>``: a simulated complete binary matrix (``bench_marginal.write_rasch``), Rasch default formula.

    nice -n 10 .venv/bin/python benchmarks/bench_tune.py --design slopes8 depth150 dvb --seeds 1 2 3 \\
        --tune 500 300 --out benchmarks/out/tune.csv
    .venv/bin/python benchmarks/bench_tune.py --table benchmarks/out/tune.csv
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing the package

import polars as pl  # noqa: E402

from benchmarks import bench_plan  # noqa: E402
from benchmarks.bench_hvsb_items import small_tree  # noqa: E402
from benchmarks.bench_marginal import write_rasch  # noqa: E402
from dvbstats import api  # noqa: E402
from dvbstats.benchmarks.hvsb import HVSB  # noqa: E402
from dvbstats.model import formula as formulas  # noqa: E402
from dvbstats.model.sample import SamplerSettings  # noqa: E402
from dvbstats.results.fitted import fit  # noqa: E402
from dvbstats.simulate import example  # noqa: E402

FIELDS = ("design", "seed", "tune", "cells", "first_ok", "ok", "attempts", "first_failures", "divergences",
          "max_r_hat", "min_ess_bulk", "min_ess_tail", "steps_per_draw", "sample_s", "cpu_s", "wall_s")


def load(name: str, seed: int, tmp: Path):
    """The formula, cells and measured form of design ``name`` (data seed ``seed``)."""
    if name == "dvb":
        model = api.Model(None, api.load(None))
        return model.formula, model.cells, model.measured_form
    if m := re.fullmatch(r"dvbitems(\d+)", name):
        f = formulas.parse(formulas.DEFAULT_FORMULA + " + (1|prompt)")
        return f, example.at_depth(int(m[1]), seed, f.variables, item_sd=0.5), None
    if m := re.fullmatch(r"hvsbtree(\d+)", name):
        model = api.Model(HVSB.default_formula, small_tree(f"{m[1]},4,100", seed, tmp))
        return model.formula, model.cells, model.measured_form
    if name == "hvsb":
        model = api.Model(HVSB.default_formula, api.load(None, benchmark="hvsb"))
        return model.formula, model.cells, model.measured_form
    if m := re.fullmatch(r"rasch(\d+)x(\d+)", name):
        path = tmp / f"rasch{seed}.csv"
        write_rasch(path, int(m[1]), int(m[2]), seed)
        model = api.Model(None, api.load(str(path), benchmark="binary"))
        return model.formula, model.cells, model.measured_form
    return bench_plan.load(name, seed)


def run(name: str, seed: int, tune: int, tmp: Path) -> dict:
    f, cells, measured = load(name, seed, tmp)
    t, c = time.perf_counter(), bench_plan.cpu()
    res = fit(f, cells, settings=SamplerSettings(seed=seed, tune=tune), progress=False, measured_form=measured)
    wall, used = time.perf_counter() - t, bench_plan.cpu() - c
    first, kept = res.sampling.attempts[0], res.sampling.attempts[-1]
    s = kept["diagnostics"]
    return {"design": name, "seed": seed, "tune": tune, "cells": cells.data.height,
            "first_ok": first["diagnostics"]["ok"], "ok": s["ok"], "attempts": len(res.sampling.attempts),
            "first_failures": "; ".join(first["diagnostics"]["failures"]), "divergences": s["divergences"],
            "max_r_hat": round(s["max_r_hat"], 4), "min_ess_bulk": round(s["min_ess_bulk"]),
            "min_ess_tail": round(s["min_ess_tail"]), "steps_per_draw": kept["steps_per_draw"],
            "sample_s": round(sum(a["sample_s"] for a in res.sampling.attempts), 1), "cpu_s": round(used, 1),
            "wall_s": round(wall, 1)}


def table(path: Path) -> str:
    """Per design and tuning length: first attempts passing, kept fits passing, the worst checks and the median
    CPU seconds; then the CPU ratio of each shorter tuning against the longest, per design (median over seeds)."""
    d = pl.read_csv(path)
    g = (d.group_by("design", "tune", maintain_order=True)
         .agg(n=pl.len(), first_ok=pl.col("first_ok").sum(), ok=pl.col("ok").sum(),
              max_r_hat=pl.col("max_r_hat").max(), min_ess_bulk=pl.col("min_ess_bulk").min(),
              divergences=pl.col("divergences").sum(), steps=pl.col("steps_per_draw").median(),
              cpu_s=pl.col("cpu_s").median().round(1)).sort("design", "tune"))
    longest = d["tune"].max()
    base = d.filter(pl.col("tune") == longest).select("design", "seed", base_cpu="cpu_s")
    ratio = (d.join(base, on=["design", "seed"]).with_columns(r=pl.col("cpu_s") / pl.col("base_cpu"))
             .group_by("design", "tune").agg(cpu_ratio=pl.col("r").median()))
    g = g.join(ratio, on=["design", "tune"], how="left")
    lines = [f"| design | tune | fits | first attempt passes | kept fit passes | worst R-hat | min bulk ESS | "
             f"divergences (kept) | steps per draw | CPU s (median) | CPU / tune {longest} |", "|---" * 11 + "|"]
    for r in g.iter_rows(named=True):
        lines.append(f"| {r['design']} | {r['tune']} | {r['n']} | {r['first_ok']} | {r['ok']} | {r['max_r_hat']} | "
                     f"{r['min_ess_bulk']} | {r['divergences']} | {r['steps']} | {r['cpu_s']} | {r['cpu_ratio']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--table", help="print the markdown table of this CSV and stop")
    what.add_argument("--design", nargs="+", help="the designs to fit (see above)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--tune", type=int, nargs="+", default=[500, 300])
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "tune.csv"))
    args = p.parse_args()
    if args.table:
        print(table(Path(args.table)))
        return
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.design:
            for seed in args.seeds:
                for tune in args.tune:
                    row = run(name, seed, tune, Path(tmp))
                    bench_plan.append_csv(Path(args.out), [row], FIELDS)
                    print(f"{time.strftime('%H:%M:%S')} " + ", ".join(f"{k} {v}" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    main()
