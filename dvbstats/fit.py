"""``python -m dvbstats.fit``: result dumps in, posterior DVGR out.

Orchestration only: ingest → cells → fit → summaries → run folder (→ scaling → report).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from . import cells as cellmod
from . import formula as formulamod
from . import manifest, summaries
from .fitting import Fit, fit
from .ingest import RECONCILIATION_SCHEMA, IngestError, TrialFile, load
from .ingest import sources as ingest_sources
from .model import PARAMETRIZATIONS
from .priors import PriorError, Priors
from .registry import ModelTable
from .sample import MAX_R_HAT, MIN_ESS, SamplerSettings

EXIT_DIAGNOSTICS = 3


def run(
    paths: Sequence[str | Path] | None = None,
    *,
    out: Path | None = None,
    name: str | None = None,
    formula: str | None = None,
    models: str | Path | None = None,
    priors: Sequence[str] = (),
    values: Sequence[str] = (),
    on_conflict: str = "error",
    draws: int = 1000,
    tune: int = 500,
    chains: int = 4,
    seed: int = 20251,
    target_accept: float | None = None,
    sampler: str = "nutpie",
    parametrization: str = "auto",
    hdi_prob: float = 0.94,
    scaling: bool | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    report: bool = False,
    processed: Path = Path("data/processed"),
    progress: bool = True,
    log=print,
) -> tuple[Path, Fit]:
    """Fit ``paths`` (the embedded synthetic example when None) and write the run folder."""
    from . import example, schema

    t_start = time.perf_counter()
    synthetic = paths is None
    if paths is None:
        log("No input given: fitting the embedded SYNTHETIC example (9 models x 12,000 prompts, "
            "simulated with effects calibrated to the published DVB aggregates).")
        paths = [str(p) for p in example.write_example()]
    else:
        synthetic = example.is_example(paths)
    name = name or _run_name(paths, synthetic)
    out = Path(out) if out else Path("runs") / name
    out.mkdir(parents=True, exist_ok=True)

    table = ModelTable.read(models) if models else ModelTable.default()
    vocab = tuple(schema.DVB_VALUES) + tuple(v for v in values if v not in schema.DVB_VALUES)
    f = formulamod.parse(formula or formulamod.DEFAULT_FORMULA)
    with _warnings_to(log):
        data = read_inputs(paths, f, table, vocab, on_conflict)
    t_ingest = time.perf_counter()
    if data.trials is not None:
        processed.mkdir(parents=True, exist_ok=True)
        data.trials.write(processed / f"{name}_trials.parquet")
    cells, quality, reconciliation, inputs = data.cells, data.quality, data.reconciliation, data.inputs
    log(f"Ingested {sum(i['n_rows'] for i in inputs):,} rows from {len(inputs)} file(s): "
        f"{cells.n_trials:,} trials used in {cells.data.height:,} design cells, "
        f"{int(quality['n_rows'].sum()) - cells.n_trials:,} rows excluded (see data_quality.csv).")

    if pairs:  # a misspelled pair should stop the run before the sampler, not after it
        from . import scaling as scalingmod

        scalingmod.pairs(data.models, cells.by_model()["model"].to_list(), explicit=pairs)
    settings = SamplerSettings(sampler=sampler, draws=draws, tune=tune, chains=chains, seed=seed,
                               target_accept=target_accept)
    log(f"Fitting {f} with {sampler} ({chains} chains x {draws} draws, {tune} tuning); "
        "compiling the model first takes 10-30 s...")
    with _warnings_to(log):
        result = fit(f, cells, priors=Priors.from_specs(priors), settings=settings,
                     parametrization=parametrization, progress=progress)
    log(f"Sampled in {result.timing['sample_s']:.1f} s; summarising the posterior...")
    tables = {**summaries.tables(result, hdi_prob, seed), "data_quality": quality, "reconciliation": reconciliation}
    for key, df in tables.items():
        df.write_csv(out / f"{key}.csv")
    tables["dvgr"].write_parquet(out / "dvgr.parquet")
    cells.write(out / "cells.parquet")
    result.idata.to_netcdf(str(out / "posterior.nc"), engine="h5netcdf")

    with _warnings_to(log):
        scaling_note = _scaling(result, data.models, pairs, hdi_prob, seed, out, scaling, log)
    t_end = time.perf_counter()
    meta = manifest.build(
        run_name=name, synthetic=synthetic, inputs=inputs, fit=result, quality=quality,
        reconciliation=reconciliation, hdi_prob=hdi_prob, command=sys.argv if __name__ == "__main__" else None,
        timing={"ingest_s": t_ingest - t_start, **result.timing, "total_s": t_end - t_start},
        extra={"scaling": scaling_note},
    )
    (out / "manifest.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    if report:
        from .report import render

        log("Rendering the report...")
        html = render(out)
        log(f"Report: {html}")
    return out, result


@contextmanager
def _warnings_to(log):
    """Show each distinct warning once, as a plain line (library deprecation notices are not the user's)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield
    for message in dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught):
        log(f"warning: {message}")


@dataclass(frozen=True)
class Inputs:
    """What the fit needs from the input files, whether trial dumps or aggregated cell tables."""

    cells: cellmod.CellTable
    quality: pl.DataFrame  # per model status counts
    reconciliation: pl.DataFrame
    models: ModelTable  # the model table rows of the models present
    inputs: list[dict]  # path, sha256, format, n_rows
    trials: TrialFile | None


def read_inputs(paths, f: formulamod.Formula, table: ModelTable, values, on_conflict) -> Inputs:
    """Ingest ``paths`` and aggregate them into the cells of the formula's design.

    Dumps are streamed to a temporary Parquet trial table (kept while ``Inputs.trials`` lives), so
    the trial table is never held in memory."""
    source = load(paths, values=values, models=table, on_conflict=on_conflict, stream=True)
    if isinstance(source, TrialFile):
        return Inputs(
            cells=cellmod.from_trials(source.scan(), f.variables),
            quality=source.status_counts(),
            reconciliation=source.reconciliation,
            models=table.resolve(source.model_ids()),
            inputs=[asdict(s) | {"kind": "trials"} for s in source.sources],
            trials=source,
        )
    cells = cellmod.from_counts(source, f.variables)
    quality = cells.by_model().select("model", n_rows="n_prompts", n_prompts="n_prompts", n_used="n_trials",
                                      n_unparsed=pl.col("n_prompts") - pl.col("n_trials"))
    return Inputs(
        cells=cells,
        quality=quality,
        reconciliation=pl.DataFrame(schema=RECONCILIATION_SCHEMA),
        models=table.resolve(source["model_id"].unique().to_list()),
        inputs=[asdict(s) | {"kind": "cells"} for s in ingest_sources(paths)],
        trials=None,
    )


def _scaling(result: Fit, table: ModelTable, pairs, hdi_prob, seed, out: Path, wanted: bool | None, log) -> str:
    """Run the scaling-trend tests when asked, or by default when a family has two sizes."""
    from . import scaling

    present = table.data
    if wanted is None:
        wanted = bool(table.families_with_sizes())
        if not wanted:
            return "not run: no model family with two sizes among the fitted models"
    if not wanted:
        return "not run (--no-scaling)"
    log("Scaling-trend tests (pairs within families, pooled size slope)...")
    try:
        res = scaling.run(result.dvgr, result.cells.data, present, pairs=pairs, hdi_prob=hdi_prob, seed=seed)
    except scaling.ScalingUnavailable as exc:
        log(f"Scaling tests not run: {exc}")
        return f"not run: {exc}"
    res.write(out)
    return "run"


def _run_name(paths: Sequence[str | Path], synthetic: bool) -> str:
    if synthetic and len(paths) > 1:
        return "default"
    stem = Path(str(paths[0])).stem.replace("*", "all") or "run"
    return stem if len(paths) == 1 else f"{stem}_and_{len(paths) - 1}_more"


def console_table(dvgr: pl.DataFrame) -> str:
    """The readable table the CLI ends with."""
    head = f"{'model':<24}{'used':>8}{'excl':>6}  {'raw DVGR [Wilson 95%]':<24}{'posterior DVGR [HDI]':<24}{'P(<0.5)':>8}{'R-hat':>7}{'ESS':>7}"
    lines = [head, "-" * len(head)]
    for r in dvgr.iter_rows(named=True):
        if r["model"] == "overall":
            lines.append("-" * len(head))
        lines.append(
            f"{r['model']:<24}{r['n_used']:>8,}{r['n_excluded']:>6,}  "
            f"{r['raw_dvgr']:.3f} [{r['wilson_low']:.3f}, {r['wilson_high']:.3f}]    "
            f"{r['dvgr_mean']:.3f} [{r['dvgr_hdi_low']:.3f}, {r['dvgr_hdi_high']:.3f}]    "
            f"{r['p_below_half']:>8.3f}{r['r_hat']:>7.3f}{r['ess_bulk']:>7.0f}"
        )
    return "\n".join(lines)


def console_scaling(out: Path) -> str:
    """Pair contrasts and the pooled slope, when the scaling tests ran."""
    pairs_csv, trend_csv = out / "scaling_pairs.csv", out / "scaling_trend.csv"
    if not pairs_csv.exists():
        return ""
    lines = ["Scaling (larger minus smaller, posterior DVGR difference [HDI], P(<0); paper's chi-square p):"]
    for r in pl.read_csv(pairs_csv).iter_rows(named=True):
        lines.append(f"  {r['smaller'] + ' -> ' + r['larger']:<44}{r['diff_mean']:+.3f} [{r['diff_hdi_low']:+.3f}, "
                     f"{r['diff_hdi_high']:+.3f}]  P={r['p_diff_below_0']:.3f}  chi2 p={r['chi2_p']:.2g}")
    if trend_csv.exists():
        t = pl.read_csv(trend_csv).row(0, named=True)
        lines.append(f"  pooled slope per within-family SD of size ({t['size_measure']}): {t['slope_mean']:+.3f} "
                     f"[{t['slope_hdi_low']:+.3f}, {t['slope_hdi_high']:+.3f}], P(slope<0)={t['p_slope_below_0']:.3f}, "
                     f"BF01={t['bf01']:.2f}")
        if t["max_r_hat"] > MAX_R_HAT or t["divergences"] > 0 or t["min_ess_bulk"] < MIN_ESS:
            lines.append(f"  WARNING: the slope model's sampler checks failed (R-hat {t['max_r_hat']:.3f}, "
                         f"ESS {t['min_ess_bulk']:.0f}, {t['divergences']} divergences)")
    return "\n".join(lines)


def _pair(text: str) -> tuple[str, str]:
    small, sep, large = text.partition(":")
    if not sep or not small or not large:
        raise argparse.ArgumentTypeError(f"a pair is SMALLER:LARGER (short names), not {text!r}")
    return small, large


EPILOG = """\
examples:
  python -m dvbstats.fit                                  # the embedded synthetic example, with its report
  python -m dvbstats.fit results/*.csv --out runs/mine --report
  python -m dvbstats.fit dumps/ --formula "chose_deep ~ 1 + (1|model) + (1|value) + (1|model:value)"
  python -m dvbstats.fit dumps/ --prior sd=halfnormal(0.5) --draws 2000 --seed 7

exit status: 0 success; 2 bad input or arguments; 3 sampler diagnostics failed (R-hat > 1.01,
ESS < 400 or divergences; the outputs are written and flagged; --allow-warnings exits 0).
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dvbstats.fit",
        description="Fit a hierarchical Bayesian logistic model of deep-value vs shallow-feature choices "
        "to DVB result dumps and report posterior DVGR per model. With no PATHS, fits the embedded "
        "synthetic published-scale example (9 models x 12,000 prompts).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="*", help="harness dumps (.csv, .jsonl/.ndjson, .parquet), folders or globs; "
                   "or aggregated cell tables (n_trials, n_deep per design cell)")
    data = p.add_argument_group("input")
    data.add_argument("--models", help="model table CSV (model_id, short_name, developer, family, size_rank_in_family, "
                      "params_b); default: the 9 published models")
    data.add_argument("--values", default="", help="extra value names, comma-separated, for benchmarks beyond the 11 DVB values")
    data.add_argument("--on-conflict", choices=["error", "first", "last", "exclude"], default="error",
                      help="when two parsed copies of a prompt disagree: stop (default), keep the first or last copy, "
                      "or exclude all of them")
    model = p.add_argument_group("model")
    model.add_argument("--formula", default=formulamod.DEFAULT_FORMULA, help="R-style formula (default: %(default)s)")
    model.add_argument("--prior", action="append", default=[], metavar="NAME=DIST(...)",
                       help="override a prior, repeatable: sd=halfnormal(0.5), sd_value=exponential(2), "
                       "b_log_n_train=normal(0,0.5), intercept=normal(0,2) (defaults in docs/model.md)")
    model.add_argument("--parametrization", choices=PARAMETRIZATIONS, default="auto",
                       help="random-effect parametrisation (default: %(default)s, which centres a zero-sum term "
                       "when its levels hold >= 1000 trials and non-centres it otherwise; see docs/model.md)")
    sampling = p.add_argument_group("sampler")
    sampling.add_argument("--sampler", choices=["nutpie", "pymc"], default="nutpie", help="default: %(default)s")
    sampling.add_argument("--draws", type=int, default=1000, help="posterior draws per chain (default: %(default)s)")
    sampling.add_argument("--tune", type=int, default=500, help="tuning draws per chain (default: %(default)s)")
    sampling.add_argument("--chains", type=int, default=4, help="default: %(default)s")
    sampling.add_argument("--seed", type=int, default=20251, help="seed of sampling and predictions (default: %(default)s)")
    sampling.add_argument("--target-accept", type=float, default=None,
                          help="NUTS target acceptance rate; raise it (0.9-0.99) when a fit reports divergences "
                          "(default: 0.8 when every random term is centred, 0.95 when one is non-centred)")
    sampling.add_argument("--allow-warnings", action="store_true", help="exit 0 even when sampler diagnostics fail")
    output = p.add_argument_group("output")
    output.add_argument("--out", type=Path, help="run folder (default: runs/<name>)")
    output.add_argument("--name", help="run name (default: from the input file names; 'default' for the example)")
    output.add_argument("--hdi", type=float, default=0.94, help="mass of the highest-density intervals (default: %(default)s)")
    output.add_argument("--scaling", action=argparse.BooleanOptionalAction, default=None,
                        help="scaling-trend tests (default: on when a model family has two sizes)")
    output.add_argument("--pairs", type=_pair, nargs="+", metavar="SMALLER:LARGER",
                        help="explicit model pairs (short names) for the scaling tests (default: adjacent sizes within families)")
    output.add_argument("--report", action=argparse.BooleanOptionalAction, default=None,
                        help="render reports/<run>/report.html (default: on for the no-argument example run)")
    output.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not 0 < args.hdi < 1:
        parser().error("--hdi must be between 0 and 1")
    if args.target_accept is not None and not 0 < args.target_accept < 1:
        parser().error("--target-accept must be between 0 and 1")
    for option in ("draws", "tune", "chains"):
        if getattr(args, option) < 1:
            parser().error(f"--{option} must be a positive whole number")
    try:
        out, result = run(
            args.paths or None, out=args.out, name=args.name, formula=args.formula, models=args.models,
            priors=args.prior, values=[v.strip() for v in args.values.split(",") if v.strip()],
            on_conflict=args.on_conflict, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
            target_accept=args.target_accept,
            sampler=args.sampler, parametrization=args.parametrization, hdi_prob=args.hdi, scaling=args.scaling,
            pairs=args.pairs, report=args.report if args.report is not None else not args.paths,
            progress=not args.quiet,
        )
    except (IngestError, formulamod.FormulaError, PriorError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dvgr = pl.read_csv(out / "dvgr.csv")
    print()
    print(f"Posterior DVGR ({args.hdi:.0%} HDI), formula: {result.formula}")
    print(console_table(dvgr))
    scaling_lines = console_scaling(out)
    if scaling_lines:
        print("\n" + scaling_lines)
    print(f"\nRun folder: {out}")
    diag = result.diagnostics
    if not diag.ok:
        print("\n" + "!" * 78, file=sys.stderr)
        print("SAMPLER DIAGNOSTICS FAILED — do not trust these numbers yet:", file=sys.stderr)
        for failure in diag.failures:
            print(f"  - {failure}", file=sys.stderr)
        print("Try a higher --target-accept (divergences), more --tune/--draws (R-hat, ESS), another "
              "--parametrization, or tighter priors.", file=sys.stderr)
        print("!" * 78, file=sys.stderr)
        return 0 if args.allow_warnings else EXIT_DIAGNOSTICS
    print(f"Diagnostics OK: max R-hat {diag.summary()['max_r_hat']:.3f}, min bulk ESS "
          f"{diag.summary()['min_ess_bulk']:.0f}, {diag.divergences} divergences.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
