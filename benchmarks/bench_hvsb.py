"""Time the embedded synthetic HVSB example end to end: ``python -m dvbstats.fit --benchmark hvsb``.

Ingest (1,728 judgment files, 72,017 rows) + fit of HVSB's default formula (item effects
included; nutpie, 4 chains x 1000 draws) + run folder + report, each run a fresh process writing a
fresh run folder. The baseline, timed the same way in the same session, is the ingest alone
(``dvb.load(None, benchmark="hvsb")``), so the ratio says what the fit and the report add. Wall
time, CPU time (the machine may be shared: CPU time is the load-independent figure) and peak RSS
are reported with the run's sampler diagnostics and leapfrog steps per draw, and where the wall
time goes (medians over the runs, from the manifest's timing): ingest, design, sampling, the
posterior tables, the scaling tests, the judgment-consistency analysis, and the report (the rest
of the run). Targets: <= 90 s, <= 2 GB, diagnostics passing.

    .venv/bin/python benchmarks/bench_hvsb.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing the package

from benchmarks._common import describe, stamp, timed_runs  # noqa: E402

LOAD = "import dvbstats as dvb; d = dvb.load(None, benchmark='hvsb'); print(d)\n"


def steps_per_draw(run_folder: Path) -> float:
    """Leapfrog steps (gradients) per posterior draw of the run's saved posterior (tuning excluded)."""
    import arviz as az

    return float(az.from_netcdf(run_folder / "posterior.nc").sample_stats["n_steps"].mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()

    print(f"{stamp()}  HVSB example end to end, {args.runs} runs each")
    with tempfile.TemporaryDirectory() as tmp:
        load = timed_runs([sys.executable, "-c", LOAD], args.runs, cwd=str(ROOT))
        runs, diagnostics, stages = [], [], []
        for i in range(args.runs):
            out = Path(tmp) / f"run{i}"
            runs += timed_runs([sys.executable, "-m", "dvbstats.fit", "--benchmark", "hvsb", "--out", str(out),
                                "--report", "--quiet", "--allow-warnings"], 1, cwd=str(ROOT))
            meta = json.loads((out / "manifest.json").read_text())
            diagnostics.append({**meta["diagnostics"], "steps_per_draw": steps_per_draw(out)})
            stages.append({**{k: v for k, v in meta["timing"].items() if k.endswith("_s")},
                           "report_s": runs[-1]["seconds"] - meta["timing"].get("total_s", float("nan"))})
            print(f"    timing {meta['timing']}; diagnostics ok={meta['diagnostics']['ok']} "
                  f"max R-hat {meta['diagnostics']['max_r_hat']:.3f} min ESS {meta['diagnostics']['min_ess_bulk']:.0f} "
                  f"divergences {meta['diagnostics']['divergences']}, "
                  f"{diagnostics[-1]['steps_per_draw']:.1f} leapfrog steps per draw")
    failed = [r for r in runs + load if r["returncode"] != 0]
    if failed:
        sys.exit(f"a run failed: {failed[0]['stderr']}")
    wall = [r["seconds"] for r in runs]
    print(f"ingest only (baseline): {describe([r['seconds'] for r in load], 's')}, "
          f"CPU {describe([r['cpu_s'] for r in load], 's')}")
    print(f"end to end: {describe(wall, 's')}, CPU {describe([r['cpu_s'] for r in runs], 's')}, "
          f"peak RSS {describe([r['peak_rss_mib'] for r in runs], 'MiB')}")
    for key in ("ingest_s", "build_s", "sample_s", "tables_s", "scaling_s", "agreement_s", "report_s"):
        values = [st[key] for st in stages if key in st]
        if values:
            print(f"  {key.removesuffix('_s'):<10} median {statistics.median(values):7.1f} s wall")
    print(f"ratio end to end / ingest: {statistics.median(wall) / statistics.median(r['seconds'] for r in load):.1f}x; "
          f"diagnostics passed in {sum(d['ok'] for d in diagnostics)} of {len(diagnostics)} runs; "
          f"leapfrog steps per draw (sampling) {describe([d['steps_per_draw'] for d in diagnostics], '')}")


if __name__ == "__main__":
    main()
