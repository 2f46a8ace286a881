"""Large fits end to end: many models (issue 11 §3) and item effects at published scale (issue 9 §1).

* ``--input simulated`` (default): ``--models`` models x ``--prompts`` prompts simulated with
  ``dvbstats.simulate`` (effects drawn with the SDs below, 3% unparsed, Parquet dumps), then
  ``python -m dvbstats.fit DUMPS --no-report --no-scaling`` with the default formula.
  Target: 100 models x 12,000 prompts (1.2 M trials) <= 3 min, peak memory <= 4 GB.
* ``--item-effects``: the default formula plus ``(1|prompt)`` (issue 9 §1) at published scale, on
  the embedded example (``--input example``, 9 models x 12,000 prompts, no item-level variation in
  its truth) or on simulated dumps with item effects (``--models 9 --item-sd 1.0``). Target:
  <= 5 min, every diagnostic passing.

The CLI streams its input (dumps -> a Parquet trial file by a sink -> cells by a streaming
group-by); the agreement analysis runs (4,950 pairs at 100 models) and ``save_s`` in the stages
includes it (``agreement_s`` alone).

Every run is a fresh process (wall seconds and peak RSS of the whole process tree's largest
member); the stages come from the run's manifest. Medians over ``--runs``.

    python benchmarks/bench_scale.py [--runs 2] [--models 100] [--prompts 12000]
    python benchmarks/bench_scale.py --input example --item-effects [--runs 2]
    python benchmarks/bench_scale.py --item-effects --models 9 --item-sd 1.0 [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import describe, stamp, timed_runs

ROOT = Path(__file__).resolve().parents[1]
SD = {"model": 0.5, "value": 0.4, "feature": 0.3, "context": 0.25}


def simulated(out: Path, n_models: int, n_prompts: int, seed: int, item_sd: float = 0.0) -> Path:
    """Parquet dumps under ``out/dumps`` and ``out/models.csv``: ten models per developer (so that the
    agreement model has same- and cross-developer pairs: 450 and 4,500 at 100 models)."""
    from dataclasses import replace

    import polars as pl

    from dvbstats.simulate import example, dvb as simulate

    _, design = example.example_effects()
    design = replace(design, n_prompts=n_prompts)
    ids = [f"sim/model-{i:03d}" for i in range(n_models)]
    effects = simulate.draw_effects(design, ids, intercept=-0.8, log_n_train=-0.1, sd=SD, seed=seed)
    simulate.simulate(effects, design, seed=seed, out_dir=out / "dumps", file_format="parquet", item_sd=item_sd)
    pl.DataFrame({"model_id": ids, "short_name": [i.removeprefix("sim/") for i in ids],
                  "developer": [f"dev-{i // 10}" for i in range(n_models)], "family": ids,
                  "size_rank_in_family": [None] * n_models, "params_b": [None] * n_models},
                 schema_overrides={"size_rank_in_family": pl.Int32, "params_b": pl.Float64}
                 ).write_csv(out / "models.csv")
    return out


def sampler_steps(posterior: Path) -> dict:
    """Leapfrog steps per draw and step size after tuning, from a run folder's posterior."""
    import arviz as az

    stats = az.from_netcdf(posterior).sample_stats
    return {"steps_per_draw": round(float(stats["n_steps"].mean()), 1), "steps": int(stats["n_steps"].sum()),
            "step_size": round(float(stats["step_size"].mean()), 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--input", choices=["simulated", "example"], default="simulated")
    p.add_argument("--models", type=int, default=100)
    p.add_argument("--prompts", type=int, default=12000)
    p.add_argument("--formula", default=None)
    p.add_argument("--item-effects", action="store_true", help="the default formula plus (1|prompt)")
    p.add_argument("--item-sd", type=float, default=0.0, help="SD of simulated per-prompt effects (simulated input)")
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args()
    if args.item_effects:
        from dvbstats.model.formula import DEFAULT_FORMULA

        args.formula = f"{args.formula or DEFAULT_FORMULA} + (1|prompt)"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        if args.input == "simulated":
            simulated(tmp, args.models, args.prompts, args.seed, args.item_sd)
            print(f"[{stamp()}] simulated {args.models} models x {args.prompts:,} prompts (item SD {args.item_sd}) in "
                  f"{time.perf_counter() - t:.0f} s", flush=True)
            inputs = [str(tmp / "dumps"), "--models", str(tmp / "models.csv")]
        else:
            from dvbstats.simulate import example

            example.write_example(ROOT / "data/raw/example")
            inputs = []
        cmd = [sys.executable, "-m", "dvbstats.fit", *inputs, "--no-report", "--quiet", "--no-scaling",
               "--out", str(tmp / "run"), "--allow-warnings"]
        if args.formula:
            cmd += ["--formula", args.formula]
        print(f"[{stamp()}] {' '.join(cmd[1:])}", flush=True)
        rows = timed_runs(cmd, args.runs, cwd=str(ROOT))
        m = json.loads((tmp / "run/manifest.json").read_text())
        steps = sampler_steps(tmp / "run/posterior.nc")
    print(f"wall time: {describe([r['seconds'] for r in rows], 's')}")
    print(f"CPU time:  {describe([r['cpu_s'] for r in rows], 's')} (all threads)")
    print(f"peak RSS:  {describe([r['peak_rss_mib'] for r in rows], 'MiB')}")
    print(f"stages of the last run: {m['timing']}; backend {m.get('backend')}")
    print(f"cells: {m['counts']['cells']:,}, trials used: {m['counts']['trials_used']:,}; "
          f"parametrisation {m['parametrization']['terms']}; target accept {m['sampler']['target_accept']}")
    print(f"diagnostics: {m['diagnostics']}")
    print(f"sampler (last run, after tuning): {steps}")
    print(f"agreement: {m.get('agreement')}; bounded outputs: {m.get('bounded')}")


if __name__ == "__main__":
    main()
