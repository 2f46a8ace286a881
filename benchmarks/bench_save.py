"""Time ``Fit.save`` of this checkout against a baseline commit's, on the same simulated fit, in one run.

    python benchmarks/bench_save.py [--baseline main] [--repeat 3] [--prompts 2000]

The data: simulated DVB dumps of the 9 published models (families with two sizes, so the baseline's
save runs the scaling tests; a trial table of 9 models, so it runs the agreement analysis), fitted with
``chose_deep ~ 1 + (1|model) + (1|value)`` (2 chains x 500 draws, seed 1). Each tree (the baseline's,
extracted with ``git archive``, and this checkout) runs in its own process, alternating, ``--repeat``
times after one untimed warm-up each (Numba's cache is per source path: the baseline's extracted tree
compiles its kernels once); each process fits once and times on a fresh copy of the fit (no cached
design averages):

- ``save``: ``fit.save(out)`` — the baseline's runs the scaling MCMC and the agreement models; this
  checkout's only serialises;
- ``analyses+save`` (this checkout): ``fit.save(out, analyses=Analysis().run(fit))``, the baseline's work.

Printed: median wall and CPU seconds of each, and the ratios to the baseline's save measured in the same run.

Measured (2026-12-07, ``--repeat 2 --prompts 1000``: 8,711 trials, a 0.8 s fit; machine load average
about 26 on 2 cores, so wall seconds are mostly waiting and CPU seconds are the comparable figure):
baseline (main) ``Fit.save`` 6.93 CPU s (31.3 s wall); this checkout's ``Fit.save`` 0.43 CPU s (1.18 s
wall): 0.06x the CPU, 0.04x the wall; the analyses and the save together 6.35 CPU s (20.5 s wall),
0.92x the baseline's save: the same work, moved into explicit steps.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, tempfile, time
from dataclasses import replace
from pathlib import Path
import dvbstats as dvb
from dvbstats import simulate
from dvbstats.input.registry import ModelTable

prompts = int(sys.argv[1])
tmp = Path(tempfile.mkdtemp())
design = simulate.StudyDesign(feature_dims=[("Formal", "Colloquial")], n_prompts=prompts)
models = ModelTable.default().data["model_id"].to_list()
effects = simulate.draw_effects(design, models, intercept=-0.3, log_n_train=0.0,
                                sd={"model": 0.3, "value": 0.3, "feature": 0.2, "context": 0.2}, seed=5)
sim = simulate.simulate(effects, design, seed=6, out_dir=tmp / "dumps")
model = dvb.Model("chose_deep ~ 1 + (1|model) + (1|value)", dvb.load([str(p) for p in sim.paths]))
t = time.perf_counter()
fit = model.fit(draws=500, tune=500, chains=2, seed=1, progress=False)
out = {"fit_s": time.perf_counter() - t, "trials": model.cells.n_trials}
t, c = time.perf_counter(), time.process_time()
replace(fit).save(tmp / "save")
out["save_s"], out["save_cpu_s"] = time.perf_counter() - t, time.process_time() - c
if hasattr(dvb, "Analysis"):
    t, c = time.perf_counter(), time.process_time()
    copy = replace(fit)
    copy.save(tmp / "both", analyses=dvb.Analysis().run(copy))
    out["analyses_save_s"], out["analyses_save_cpu_s"] = time.perf_counter() - t, time.process_time() - c
print("RESULT " + json.dumps(out))
"""


def child(tree: Path, prompts: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    res = subprocess.run([sys.executable, "-c", CHILD, str(prompts)], capture_output=True, text=True, env=env,
                         cwd=tree, check=True)
    line = next(x for x in res.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", default="main")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--prompts", type=int, default=2000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        base.mkdir()
        archive = subprocess.run(["git", "archive", args.baseline], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        runs = {"baseline": [], "this": []}
        for tree in (base, ROOT):  # warm-up: Numba's cache, the embedded files
            child(tree, args.prompts)
        for i in range(args.repeat):
            for name, tree in (("baseline", base), ("this", ROOT)):
                row = child(tree, args.prompts)
                runs[name].append(row)
                print(f"run {i + 1} {name}: {json.dumps({k: round(v, 2) for k, v in row.items()})}", flush=True)
    med = {name: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for name, rows in runs.items()}
    print(f"\n{int(med['this']['trials']):,} trials; fit {med['this']['fit_s']:.1f} s (medians of {args.repeat}; "
          "CPU seconds of the process, all threads, beside wall: on a loaded machine the CPU is the comparable one)")
    for label, key in (("Fit.save", "save"), ("analyses + Fit.save", "analyses_save")):
        for unit, suffix in (("wall", "_s"), ("CPU", "_cpu_s")):
            old = med["baseline"][f"save{suffix}"]
            print(f"this checkout {label:<20} {unit:>4} {med['this'][key + suffix]:7.2f} s = "
                  f"{med['this'][key + suffix] / old:.2f} x the baseline's ({args.baseline}) Fit.save {old:.2f} s")

if __name__ == "__main__":
    main()
