"""Time the post-sampling stages of a run folder, this checkout against a baseline commit, in one process.

    python benchmarks/bench_stages.py RUN_FOLDER [--baseline main] [--repeat 3] [--dumps DIR --models CSV]

RUN_FOLDER is a run folder written by ``python -m dvbstats.fit`` (its posterior, cells and trials are read
back; nothing is refitted). The baseline's versions of the modules below are loaded from ``git show
BASELINE:<path>`` beside this checkout's, and each piece is timed for both, alternating, ``--repeat`` times:
median CPU and wall seconds and the ratio baseline / this checkout. Each piece's outputs are compared too
(equal up to float rounding; the PPC's replications up to Monte Carlo error), so a speed-up that changed a
number would show.

Pieces: the design averages of ``Fit._averages`` (every grouping), the posterior predictive check, the
agreement stage's pair counts, agreement table (kappa), paired tests, frequentist models (LMMs) and one
gradient of the Bayesian agreement density; with ``--dumps``, ingest (``stream_dumps``) of those dumps.
Measured on 100 models x 12,000 prompts (benchmarks/bench_scale.py's input) and the published-scale example.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dvbstats, whichever is installed

MODULES = {"estimands": "dvbstats/results/estimands.py", "tables": "dvbstats/results/tables.py",
           "agreement": "dvbstats/results/agreement.py", "paired": "dvbstats/results/paired.py",
           "agreement_logp": "dvbstats/results/agreement_logp.py", "ingest": "dvbstats/input/ingest.py"}


def baseline_modules(ref: str, folder: Path) -> dict:
    """The baseline's modules, each loaded from its text at ``ref`` under a private name."""
    out = {}
    for name, path in MODULES.items():
        text = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=ROOT, check=True, capture_output=True,
                              text=True).stdout
        file = folder / f"baseline_{name}.py"
        file.write_text(text)
        spec = importlib.util.spec_from_file_location(f"baseline_{name}", file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        out[name] = module
    return out


def timed(function) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def compare(label: str, pieces: dict, repeat: int, check) -> None:
    """Time ``pieces`` (baseline, new: callables) alternately; print medians and the ratio; ``check`` the outputs."""
    runs = {k: [] for k in pieces}
    outputs = {}
    for _ in range(repeat):
        for key, function in pieces.items():
            wall, cpu, outputs[key] = timed(function)
            runs[key].append((wall, cpu))
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in runs.items()}
    check(outputs["baseline"], outputs["new"])
    print(f"{label:<34} baseline CPU {med['baseline'][1]:8.3f} s (wall {med['baseline'][0]:8.3f})   "
          f"new CPU {med['new'][1]:8.3f} s (wall {med['new'][0]:8.3f})   ratio CPU "
          f"{med['baseline'][1] / max(med['new'][1], 1e-9):5.1f}x", flush=True)


def same_frames(a: pl.DataFrame, b: pl.DataFrame) -> None:
    from polars.testing import assert_frame_equal

    assert_frame_equal(a, b, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--baseline", default="main", help="git commit or branch of the baseline (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--dumps", type=Path, help="also time ingest of these dumps")
    p.add_argument("--models", type=Path, help="the dumps' model table")
    p.add_argument("--skip", nargs="*", default=[], help="pieces to leave out: averages ppc agreement ingest")
    args = p.parse_args()

    from dvbstats.input.registry import ModelTable
    from dvbstats.results import agreement, estimands, paired, tables
    from dvbstats.results.agreement_logp import AgreementDensity
    from dvbstats.results.fitted import Fit

    with tempfile.TemporaryDirectory() as tmp:
        old = baseline_modules(args.baseline, Path(tmp))
        fit = Fit.load(args.run)
        print(f"{args.run}: {fit.cells.data.height:,} cells, {len(fit.models)} models, "
              f"{fit.settings.chains} x {fit.settings.draws} draws; baseline {args.baseline}", flush=True)
        small = fit.idata.isel(draw=slice(0, 2))  # compile both kernels before timing
        groupings = list(fit._averages)
        for module in (estimands, old["estimands"]):
            module.design_averages(fit.design, small, groupings)

        def same_averages(a, b):
            for (x, kx), (y, ky) in zip(a, b, strict=True):
                assert kx.equals(ky) and np.allclose(x.values, y.values, rtol=1e-10, atol=1e-13)

        if "averages" not in args.skip:
            compare(f"design averages ({len(groupings)} groupings)", {
                "baseline": lambda: old["estimands"].design_averages(fit.design, fit.idata, groupings),
                "new": lambda: estimands.design_averages(fit.design, fit.idata, groupings)}, args.repeat, same_averages)

        def same_ppc(a, b):
            assert a.select("by", "level", "observed", "n_trials").equals(b.select("by", "level", "observed", "n_trials"))
            width = (a["predicted_high"] - a["predicted_low"]).to_numpy()
            assert np.all(np.abs((a["predicted_mean"] - b["predicted_mean"]).to_numpy()) < 0.25 * width)

        if "ppc" not in args.skip:
            tables.ppc_table(fit, 0.94, 1, max_draws=2)
            compare("posterior predictive check", {
                "baseline": lambda: old["tables"].ppc_table(fit, 0.94, 1),
                "new": lambda: tables.ppc_table(fit, 0.94, 1)}, args.repeat, same_ppc)

        if "agreement" not in args.skip:
            rows = (fit.data.trials.scan().filter(pl.col("status") == "used")
                    .select("model", "prompt_id", "chose_deep", "status").collect())
            models = fit.model_table
            order = agreement.model_order(models, rows["model"].unique().to_list())
            counts = paired.pair_counts(rows, order)
            pairs = agreement.agreement_table(counts, models)
            compare(f"pair counts ({counts.height:,} pairs)", {
                "baseline": lambda: old["paired"].pair_counts(rows, order),
                "new": lambda: paired.pair_counts(rows, order)}, args.repeat, same_frames)
            compare("agreement table (kappa)", {
                "baseline": lambda: old["agreement"].agreement_table(counts, models),
                "new": lambda: agreement.agreement_table(counts, models)}, args.repeat, same_frames)
            compare("paired tests", {
                "baseline": lambda: old["paired"].paired_tests(counts),
                "new": lambda: paired.paired_tests(counts)}, args.repeat, same_frames)

            def same_rows(a, b):
                for x, y in zip(a, b, strict=True):
                    for k, v in x.items():
                        if isinstance(v, float):
                            assert np.isclose(v, y[k], rtol=1e-6, atol=1e-9, equal_nan=True), (x["method"], k)

            # the baseline fitted the multi-membership LMM twice (once to choose the Bayesian model's form)
            compare("frequentist models (LMMs)", {
                "baseline": lambda: (old["agreement"].frequentist_models(pairs), old["agreement"].centred_model_effects(pairs))[0],
                "new": lambda: agreement.frequentist_models(pairs)}, args.repeat, same_rows)
            _, same, members, names = agreement.pair_design(pairs)
            used = pairs.filter(pl.col("n_shared") > 0)
            density_args = (same, members, used["n_agree"].to_numpy(), used["n_shared"].to_numpy(), names)
            new_density = AgreementDensity(*density_args, centred=True)
            old_density = old["agreement_logp"].AgreementDensity(*density_args, centred=True)
            x = np.concatenate([[0.5, 0.0, np.log(0.15), np.log(0.1)],
                                np.random.default_rng(1).normal(0, 0.15, new_density.ndim - 4)])
            new_density.logp_and_grad(x), old_density.logp_and_grad(x)

            def same_density(a, b):
                assert abs(a[0] - b[0]) <= 1e-10 * abs(b[0]) and np.allclose(a[1], b[1], rtol=1e-8, atol=1e-8)

            compare("agreement density, 1,000 gradients", {
                "baseline": lambda: [old_density.logp_and_grad(x) for _ in range(1000)][-1],
                "new": lambda: [new_density.logp_and_grad(x) for _ in range(1000)][-1]}, args.repeat, same_density)

        if args.dumps and "ingest" not in args.skip:
            from dvbstats.input import ingest

            table = ModelTable.read(args.models) if args.models else None

            def read(module):
                trials = module.stream_dumps(args.dumps, models=table)
                return pl.read_parquet(trials.path), trials.reconciliation

            def same_trials(a, b):
                assert a[0].equals(b[0]) and a[1].equals(b[1])

            compare("ingest (stream_dumps)", {"baseline": lambda: read(old["ingest"]), "new": lambda: read(ingest)},
                    args.repeat, same_trials)


if __name__ == "__main__":
    main()
