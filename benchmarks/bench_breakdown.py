"""Where one ``python -m dvbstats.fit ... --no-report`` run spends its time and memory, stage by stage, this
checkout against a reference checkout in the same session.

    python benchmarks/bench_breakdown.py hvsb [--runs 3] [--reference /work/main] [--tune 300] [--target-accept 0.6]
    python benchmarks/bench_breakdown.py dvb-items --runs 3 --reference /work/main

Each run is a fresh process (``PYTHONPATH`` = the checkout) that runs the CLI's ``main`` with timers wrapped
around its stages: the imports, ingest (``api.load``), cells and design, the sampler's build (density and
compilation), sampling (split into tuning and draws by their leapfrog steps: every step is one gradient),
diagnostics, the analyses after the fit (scaling, agreement), and the run folder (posterior tables, the
benchmark's tables, the trial table, cells, the netCDF posterior); the rest (console tables, manifest) is
what the total leaves. Per stage: wall and CPU seconds (the whole process's CPU, all threads: the machine
is shared, read CPU) and the stage's peak RSS (``/proc/self/clear_refs`` resets the high-water mark before
each top-level stage). Nested stages are indented; a parent's figures include its children's. Tuning and
draws: leapfrog steps per iteration per chain, and their share of the sampling CPU in proportion to their
gradients. Then medians over the runs and the ratio reference / this per stage.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The stages timed: (label, "module:attribute" of the function wrapped, top-level stage?). A function is
#: replaced wherever a dvbstats module holds it (``from x import f`` included); a missing one is skipped
#: (the reference checkout may lack it).
STAGES = [
    ("ingest", "dvbstats.api:load", True),
    ("model: cells and design", "dvbstats.api:Model.__init__", True),
    ("fit (all attempts)", "dvbstats.results.fitted:fit", True),
    ("  build density", "dvbstats.model.fastlogp:pyfunc_model", False),
    ("  sampling", "dvbstats.model.sample:run_nutpie", False),
    ("  diagnostics", "dvbstats.model.sample:diagnose", False),
    ("analyses", "dvbstats.pipeline:Analysis.run", True),
    ("  scaling", "dvbstats.pipeline:Analysis.scaling_step", False),
    ("  agreement", "dvbstats.pipeline:Analysis.agreement_step", False),
    ("save (run folder)", "dvbstats.input.runfolder:write", True),
    ("  trial table", "dvbstats.input.trials:TrialFile.write", False),
    ("  posterior tables", "dvbstats.results.tables:tables", False),
    ("    rates", "dvbstats.results.tables:rate_table", False),
    ("    random effects", "dvbstats.results.tables:random_effects_table", False),
    ("    item effects", "dvbstats.results.tables:item_effects_table", False),
    ("    conditions", "dvbstats.results.tables:condition_table", False),
    ("    ranks", "dvbstats.results.tables:rank_tables", False),
    ("    ppc", "dvbstats.results.tables:ppc_table", False),
    ("    design averages", "dvbstats.results.estimands:design_averages", False),
    ("  benchmark tables", "dvbstats.benchmarks.results:tables", False),
    ("  netCDF posterior", "arviz:InferenceData.to_netcdf", False),
]


def child(case: str, options: list[str]) -> None:
    """Run the CLI on ``case`` with ``options`` and the stage timers in place; print one JSON line of the stages."""
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    import dvbstats.cli.fit as cli  # noqa: PLC0415 -- imported here, not above: the imports are a stage of their own

    records: dict[str, dict] = {}
    active: list[str] = []  # the stages running (innermost last)
    parent, current = {}, None
    for label, _, is_top in STAGES:
        current = label if is_top else current
        parent[label] = current
    top = {label for label, _, is_top in STAGES if is_top}
    imports = {"wall_s": time.perf_counter() - t_wall, "cpu_s": time.process_time() - t_cpu, "peak_mib": peak_mib()}

    def wrapper(label, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            if label in top:
                reset_peak()
            wall, cpu = time.perf_counter(), time.process_time()
            key = label if not active or parent[label] == active[0] else f"{label} [in {active[0]}]"
            active.append(label)
            try:
                return function(*args, **kwargs)
            finally:
                active.pop()
                r = records.setdefault(key, {"wall_s": 0.0, "cpu_s": 0.0, "calls": 0, "peak_mib": 0.0})
                r["wall_s"] += time.perf_counter() - wall
                r["cpu_s"] += time.process_time() - cpu
                r["calls"] += 1
                r["peak_mib"] = max(r["peak_mib"], peak_mib())
        return timed

    for label, target, _ in STAGES:
        install(target, lambda f, label=label: wrapper(label, f))
    steps: list[dict] = []
    install("nutpie:sample", lambda f: keep_warmup(f, steps, active))
    if cli.main(fit_args(case, sys.modules["dvbstats.model.formula"].DEFAULT_FORMULA) + options):
        raise SystemExit("the fit failed")
    total = {"wall_s": time.perf_counter() - t_wall, "cpu_s": time.process_time() - t_cpu, "peak_mib": hwm_mib()}
    print("BREAKDOWN " + json.dumps({"imports": imports, "stages": records, "total": total, "steps": steps}))


def install(target: str, make) -> None:
    """Replace the function ``target`` ("module:Class.attr" or "module:attr") by ``make(function)`` in its
    module or class and in every dvbstats module that imported it by name."""
    module_name, _, path = target.partition(":")
    try:
        owner = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for part in parents:
            owner = getattr(owner, part)
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
    except (ImportError, AttributeError, KeyError):
        return
    replacement = make(original)
    setattr(owner, name, replacement)
    if isinstance(owner, type):
        return
    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").startswith("dvbstats") and getattr(mod, name, None) is original:
            setattr(mod, name, replacement)


def keep_warmup(sample, steps: list[dict], active: list[str]):
    """nutpie.sample keeping its warm-up statistics: the leapfrog steps per tuning and per kept iteration of
    each chain go to ``steps`` with the stages it ran in (``active``); the warm-up groups are dropped before
    the package sees the trace."""
    @functools.wraps(sample)
    def wrapped(*args, **kwargs):
        dropped = not kwargs.get("save_warmup", False)
        within = list(active)
        sampler = sample(*args, **{**kwargs, "save_warmup": True})
        wait = sampler.wait

        def wait_and_count(*a, **k):
            idata = wait(*a, **k)
            warm, kept = idata.warmup_sample_stats["n_steps"], idata.sample_stats["n_steps"]
            steps.append({"stages": within, "tune_steps": warm.sum("draw").values.tolist(), "draw_steps": kept.sum("draw").values.tolist(),
                          "tune": int(warm.sizes["draw"]), "draws": int(kept.sizes["draw"]),
                          "tune_steps_per_iter": warm.mean("draw").round(1).values.tolist(),
                          "draw_steps_per_iter": kept.mean("draw").round(1).values.tolist()})
            for group in idata.groups() if dropped else ():
                if group.startswith("warmup_"):
                    delattr(idata, group)
            return idata

        sampler.wait = wait_and_count
        return sampler

    return wrapped


def reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_mib() -> float:
    return proc_status("VmHWM")


def hwm_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def proc_status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fit_args(case: str, default_formula: str) -> list[str]:
    """The CLI's arguments of ``case`` (its output options come from the parent)."""
    if case == "hvsb":
        return ["--benchmark", "hvsb"]
    return ["--formula", default_formula + " + (1|prompt)"]


def run(checkout: Path, case: str, out: Path, tune: int | None, target_accept: float | None = None) -> dict:
    """One run of ``case`` in a fresh process on ``checkout``: its stages (:func:`child`'s JSON)."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    options = ["--no-report", "--out", str(out), "--overwrite", "--quiet", "--allow-warnings"]
    options += ["--tune", str(tune)] if tune else []
    options += ["--target-accept", str(target_accept)] if target_accept else []
    res = subprocess.run([sys.executable, __file__, "--child", case, *options], capture_output=True, text=True, env=env,
                         cwd=str(checkout))
    line = next((l for l in res.stdout.splitlines() if l.startswith("BREAKDOWN ")), None)
    if res.returncode or line is None:
        print(res.stdout[-2000:], res.stderr[-3000:])
        raise SystemExit(f"{checkout}: the run failed (exit {res.returncode})")
    return json.loads(line.removeprefix("BREAKDOWN "))


def rows(result: dict) -> dict[str, dict]:
    """The run's stages in display order, with the sampling split into tuning and draws."""
    out = {"imports": result["imports"]}
    for label, _, _ in STAGES:
        if label in result["stages"]:
            out[label] = result["stages"][label]
            fitted = [s for s in result["steps"] if "  sampling" in s["stages"] and "analyses" not in s["stages"]]
            if label.strip() == "sampling" and fitted:
                tune = sum(sum(s["tune_steps"]) for s in fitted)
                draw = sum(sum(s["draw_steps"]) for s in fitted)
                share = tune / (tune + draw)
                for name, frac in (("    tuning (by gradients)", share), ("    draws (by gradients)", 1 - share)):
                    out[name] = {k: v * frac for k, v in out[label].items() if k in ("wall_s", "cpu_s")}
    out |= {k: v for k, v in result["stages"].items() if k not in out}  # stages called inside another top stage
    accounted = sum(out[k]["cpu_s"] for k in out if not k.startswith(" "))
    out["rest (console, manifest, exit)"] = {
        "wall_s": result["total"]["wall_s"] - sum(out[k]["wall_s"] for k in out if not k.startswith(" ")),
        "cpu_s": result["total"]["cpu_s"] - accounted}
    out["total"] = result["total"]
    return out


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3:])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("case", choices=["hvsb", "dvb-items"])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--reference", type=Path, help="checkout to compare with in the same session (e.g. /work/main)")
    p.add_argument("--tune", type=int, help="tuning iterations per chain (default: the package's)")
    p.add_argument("--target-accept", type=float, help="NUTS target acceptance (default: the package's plan)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_breakdown_"))
    checkouts = {"this": ROOT} | ({"reference": args.reference} if args.reference else {})
    results: dict[str, list[dict]] = {k: [] for k in checkouts}
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} bench_breakdown {args.case} (load average {os.getloadavg()})",
          flush=True)
    for i in range(args.runs):
        for name, checkout in checkouts.items():
            r = run(checkout, args.case, tmp / "run", args.tune, args.target_accept)
            shutil.rmtree(tmp / "run", ignore_errors=True)
            results[name].append(r)
            steps = next((s for s in r["steps"] if "analyses" not in s["stages"]), {})
            print(f"  run {i + 1} {name}: wall {r['total']['wall_s']:.1f} s, CPU {r['total']['cpu_s']:.1f} s, peak "
                  f"{r['total']['peak_mib']:.0f} MiB; steps per iteration per chain: tuning "
                  f"{steps.get('tune_steps_per_iter')}, draws {steps.get('draw_steps_per_iter')} "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    medians = {}
    for name, rs in results.items():
        table = [rows(r) for r in rs]
        medians[name] = {k: {m: statistics.median(t[k].get(m, float("nan")) for t in table if k in t)
                             for m in ("wall_s", "cpu_s", "peak_mib") if m in table[0].get(k, {})}
                         for k in table[0]}
    print(f"\nmedians over {args.runs} runs (CPU: the whole process, all threads)")
    head = f"{'stage':<34}" + "".join(f"{name + ' CPU s':>16}{'wall s':>9}{'peak MiB':>10}" for name in checkouts)
    print(head + ("   ref/this CPU" if args.reference else ""))
    for stage in medians["this"]:
        line = f"{stage:<34}"
        for name in checkouts:
            m = medians[name].get(stage, {})
            line += (f"{m.get('cpu_s', float('nan')):>16.2f}{m.get('wall_s', float('nan')):>9.2f}"
                     f"{m.get('peak_mib', float('nan')):>10.0f}")
        if args.reference and stage in medians["reference"]:
            line += f"   {medians['reference'][stage]['cpu_s'] / max(medians['this'][stage]['cpu_s'], 1e-9):8.2f}"
        print(line)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
