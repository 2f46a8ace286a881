"""Issue 23's target: a design sweep of 5 sizes x 200 simulated runs per question, from the DVB example run
folder and the HVSB example, in at most 10 minutes on 2 idle cores.

Each pilot runs ``python -m dvbstats.design`` end to end (loading the run folder, the closed form, the
simulated assurance, the files) ``--runs`` times in fresh processes. The baseline, timed in the same
run, is what any use of the pilot pays: a fresh process that imports dvbstats and loads the run folder
with its design-averaged rates (``Fit.load(RUN).level_draws("model")``). The pilots are run folders
written by ``python -m dvbstats.fit``:

    python -m dvbstats.fit --out runs/dvb_example --no-report
    python -m dvbstats.fit --benchmark hvsb --out runs/hvsb_example --no-report
    nice -n 10 python benchmarks/bench_design.py --dvb runs/dvb_example --hvsb runs/hvsb_example --runs 3

Questions: DVB, gpt-4o - gpt-4o-mini at a true difference of 0.03, each model's precision (half-width
0.02) and the scaling slope's sign: 11 questions; HVSB, targeted - none per model, the first two models'
contrast per condition, each model x condition's precision and the scaling slope's sign. Every question is
swept over 5 sizes x 200 simulated runs; the slope also over 6, 9, 12 and 20 models (20 design points).
``--no-scaling`` leaves the slope out (the issue's target as first built).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import polars as pl

from _common import describe, stamp, timed_runs

SIZES = "250,500,1000,2000,4000"
MODELS = "6,9,12,20"


def commands(dvb: Path, hvsb: Path, out: Path, scaling: bool = True) -> dict[str, list[str]]:
    models = pl.read_csv(hvsb / "models.csv")["short_name"].to_list()
    run = [sys.executable, "-m", "dvbstats.design", "--items", SIZES, "--sims", "200",
           *(["--scaling", "--models", MODELS] if scaling else [])]
    return {
        "dvb": [*run, "--pilot", str(dvb), "--contrast", "gpt-4o-gpt-4o-mini", "--difference", "0.03",
                "--precision", "0.02", "--out", str(out / "dvb")],
        "hvsb": [*run, "--pilot", str(hvsb), "--condition", "targeted-none", "--contrast", f"{models[0]}-{models[1]}",
                 "--precision", "0.02", "--out", str(out / "hvsb")],
    }


def baseline(run: Path) -> list[str]:
    code = f"import dvbstats as d; d.Fit.load({str(run)!r}).level_draws('model')"
    return [sys.executable, "-c", code]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dvb", type=Path, required=True, help="the DVB example's run folder")
    p.add_argument("--hvsb", type=Path, required=True, help="the HVSB example's run folder")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--no-scaling", action="store_true", help="leave the scaling slope's question out")
    args = p.parse_args()
    print(f"{stamp()} load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, cmd in commands(args.dvb, args.hvsb, Path(tmp), not args.no_scaling).items():
            run = args.dvb if name == "dvb" else args.hvsb
            print(f"{name}: baseline (load the run folder)", flush=True)
            base = timed_runs(baseline(run), args.runs)
            print(f"{name}: design sweep", flush=True)
            sweep = timed_runs(cmd, args.runs)
            failed = [r for r in sweep if r["returncode"]]
            if failed:
                print(failed[0]["stderr"], file=sys.stderr)
                raise SystemExit(1)
            questions = pl.read_csv(Path(tmp) / name / "design.csv")["question"].n_unique()
            wall, cpu = [r["seconds"] for r in sweep], [r["cpu_s"] for r in sweep]
            ratio = statistics.median(w / b["seconds"] for w, b in zip(wall, base))
            points = pl.read_csv(Path(tmp) / name / "design.csv").height // 2
            print(f"{name}: {questions} questions, {points} design points x 200 simulated runs: wall {describe(wall, 's')}; "
                  f"CPU {describe(cpu, 's')}; baseline wall {describe([b['seconds'] for b in base], 's')}; "
                  f"median ratio sweep / baseline {ratio:.2f}", flush=True)
            print(sweep[-1]["stdout"][-1500:], flush=True)
    print(f"{stamp()} load average {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
