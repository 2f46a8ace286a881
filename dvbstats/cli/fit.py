"""``python -m dvbstats.fit``: result dumps in, posterior DVGR out.

Orchestration only: ingest → cells → fit → summaries → run folder (→ scaling → report).
"""

from __future__ import annotations

import argparse
import errno
import shutil
import sys
import textwrap
import time
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from dvbstats import api
from dvbstats.benchmarks import BENCHMARKS, binary, sources
from dvbstats.benchmarks.hvsb import HVSB
from dvbstats.benchmarks.sources.helm import DEFAULT_METRIC as DEFAULT_HELM_METRIC
from dvbstats.benchmarks.sources.records import PARTIAL, WIDE
from dvbstats.constants import CHAINS, DRAWS, EXIT_DIAGNOSTICS, HDI_PROB, MAX_R_HAT, MIN_ESS, SEED, TUNE
from dvbstats.input import folders, manifest, runfolder
from dvbstats.input.files import IngestError
from dvbstats.input.trials import TrialFile
from dvbstats.model import fastlogp
from dvbstats.model import formula as formulamod
from dvbstats.model.plan import CENTRED_MIN_TRIALS, PARAMETRIZATIONS
from dvbstats.model.priors import PriorError, Priors
from dvbstats.pipeline import Analysis
from dvbstats.results import contrasts as contrastmod
from dvbstats.results.fitted import Fit

#: The shell's status for a run stopped by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130


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
    draws: int = DRAWS,
    tune: int = TUNE,
    chains: int = CHAINS,
    seed: int = SEED,
    target_accept: float | None = None,
    sampler: str = "nutpie",
    parametrization: str = "auto",
    hdi_prob: float = HDI_PROB,
    scaling: bool | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    contrasts: Sequence[str] = (),
    rope: float | None = None,
    agreement: bool = True,
    prior_predictive: bool = False,
    report: bool = False,
    report_dir: Path = Path("reports"),
    processed: Path | None = None,
    overwrite: bool = False,
    keep_empty_models: bool = False,
    command: Sequence[str] | None = None,
    progress: bool = True,
    benchmark: str | None = None,
    columns: dict[str, str] | None = None,
    reading: dict[str, str | None] | None = None,
    log=print,
) -> tuple[Path, Fit]:
    """Fit ``paths`` (the embedded synthetic example when None) and write the run folder.

    The steps of the Python API (:mod:`dvbstats.api`, :mod:`dvbstats.pipeline`): ``load`` → ``Model`` →
    ``Analysis.check`` → ``fit`` → ``Analysis.run`` → ``Fit.save`` (→ ``report``), with the console's words
    between them. Everything that can be checked before
    sampling is: the output folder, the formula against the data, the priors, pairs and contrasts.
    ``reading``: ``api.load``'s options for evaluation logs and wide matrices (``format``, ``scorer``, ...).
    """
    t_start = time.perf_counter()
    example = BENCHMARKS[benchmark or "dvb"] if paths is None else None
    if example is not None and not example.example:
        raise ValueError(f"the {example.name} benchmark has no embedded example: give its input files")
    if example is not None:
        log(f"No input given: fitting {example.example}.")
    name = folders.folder_name(name) if name else folders.as_folder_name(
        Path(out).resolve().name if out else _run_name(paths) if paths else example.example_run)
    out = Path(out) if out else Path("runs") / name
    folders.check(out, marker=runfolder.MARKER, overwrite=overwrite)  # before the slow part, not after it
    prior_set = Priors.from_specs(priors)  # bad priors stop the run before ingest, let alone compiling
    with _warnings_to(log):
        data = api.load(paths, models=models, values=values, on_conflict=on_conflict, benchmark=benchmark,
                        columns=columns, stream=True,  # dumps -> Parquet by a sink, cells by a streaming group-by
                        **(reading or {}))
    log(f"Ingested {sum(i['n_rows'] for i in data.inputs):,} rows from {len(data.inputs)} file(s); "
        f"{excluded_counts(data.quality())}.")
    with _warnings_to(log):
        model = api.Model(formula or data.benchmark.default_formula, data, priors=prior_set,
                          parametrization=parametrization, keep_empty_models=keep_empty_models)
    t_ingest = time.perf_counter()
    cells = model.cells
    log(cells_sentence(cells))
    if model.empty_models:
        _say_empty(model.empty_models, keep_empty_models, log)
    analysis = Analysis(hdi_prob=hdi_prob, scaling=scaling, pairs=pairs, contrasts=contrasts, rope=rope,
                        agreement=agreement, prior_predictive=prior_predictive)
    analysis.check(model)  # a misspelled pair or contrast stops the run before the sampler, not after it
    cold = sampler != "nutpie" or not fastlogp.supports(model.design) or not fastlogp.compiled_before()
    log(f"Fitting {model.formula} with {sampler} ({chains} chains x {draws} draws, {tune} tuning)"
        + ("; a first run compiles the sampler's code (10-30 s)..." if cold else "..."))
    with _warnings_to(log):
        result = model.fit(draws=draws, tune=tune, chains=chains, seed=seed, sampler=sampler,
                           target_accept=target_accept, progress=progress)
    if result.sampling.note and not progress:  # with progress on, fitting.fit said so when it happened
        log(result.sampling.note)
    log(f"Sampled in {result.timing['sample_s']:.1f} s; summarising the posterior...")
    check_space(out, run_folder_bytes(result))  # a full disk mid-write once crashed h5py (issue 18 §6)
    with _warnings_to(log):
        analyses = analysis.run(result, log)
        result.save(out, name=name, hdi_prob=hdi_prob, overwrite=overwrite, analyses=analyses, command=command,
                    processed=processed, timing={"ingest_s": t_ingest - t_start, **result.timing},
                    started=t_start, log=log)
    if report:
        log("Rendering the report...")
        try:
            with _warnings_to(log):
                html = api.report(out, report_dir)
        except KeyboardInterrupt:
            raise ReportInterrupted(out) from None
        log(f"Report: {html.resolve()}")
    return out, result


class ReportInterrupted(KeyboardInterrupt):
    """Ctrl-C while the report rendered: the run folder ``kept`` is complete and stays."""

    def __init__(self, kept: Path) -> None:
        super().__init__(str(kept))
        self.kept = kept


#: Room kept free beyond the run folder's estimated size (tables, report, the file system's own needs).
SPARE_BYTES = 64 * 2**20


def run_folder_bytes(result: Fit) -> int:
    """About how many bytes the run folder of ``result`` takes: the posterior as stored (uncompressed
    NetCDF) and the trial table, the largest files, plus :data:`SPARE_BYTES`."""
    posterior = sum(result.idata[group].nbytes for group in result.idata.groups())
    trials = result.data.trials
    stored = (trials.path.stat().st_size if isinstance(trials, TrialFile)
              else 0 if trials is None else trials.data.estimated_size())
    return int(posterior + stored + result.cells.data.estimated_size()) + SPARE_BYTES


def check_space(out: Path, needed: int) -> None:
    """Raise ``OSError(ENOSPC)`` naming ``out`` when its file system has less than ``needed`` bytes free
    (one that reports no size at all, such as sysfs, is left to the write to judge)."""
    where = next(p for p in [Path(out).resolve(), *Path(out).resolve().parents] if p.exists())
    total, _, free = shutil.disk_usage(where)
    if total and free < needed:
        raise OSError(errno.ENOSPC, f"not enough free space for the run folder: it needs about {_mb(needed)}, "
                      f"{_mb(free)} are free there", str(out))


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


def _say_empty(empty: Sequence[str], keep: bool, log) -> None:
    """Say loudly which models have no usable trial, and what was done with them."""
    log("!" * 78)
    log(f"WARNING: {len(empty)} model(s) have NO usable trial: {', '.join(empty)}.")
    log("  They are fitted on request (--keep-empty-models): their DVGR is the prior's, and it enters the overall DVGR."
        if keep else "  They are left out of the fit and of the overall DVGR; --keep-empty-models fits them.")
    log("!" * 78)


def excluded_counts(quality: pl.DataFrame) -> str:
    """The rows not in the likelihood, in the words of the per-model table: excluded rows (unparsed or
    conflicting; the table's *excl* column) and superseded duplicate rows, all counted in rows read, so that
    rows read = used + excluded + superseded."""
    totals = quality.select(pl.exclude("model").sum()).row(0, named=True)
    excluded = totals["n_unparsed"] + totals.get("n_conflict", 0)
    superseded = totals.get("n_superseded", 0)
    return (f"{totals['n_used']:,} used, {excluded:,} excluded (unparsed or conflicting; column excl)"
            + (f", {superseded:,} superseded duplicate rows" if superseded else "")
            + " (see data_quality.csv)")


def cells_sentence(cells) -> str:
    """How many trials the likelihood uses and what one of its binomial cells is."""
    by = " x ".join(cells.by)
    return (f"{cells.n_trials:,} trials used, in {cells.data.height:,} binomial cells "
            f"(a cell: one combination of {by}, the formula's variables).")


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


def _run_name(paths: Sequence[str | Path]) -> str:
    stem = Path(str(paths[0])).stem.replace("*", "all") or "run"
    return stem if len(paths) == 1 else f"{stem}_and_{len(paths) - 1}_more"


def console_width() -> int:
    """The terminal's width (``COLUMNS`` when set; 100 off a terminal)."""
    return shutil.get_terminal_size((100, 24)).columns


def say(text: str) -> None:
    """Print ``text`` with each line wrapped to the terminal's width (continuations indented like the line)."""
    width = console_width()
    for line in str(text).splitlines() or [""]:
        indent = " " * (len(line) - len(line.lstrip()))
        print(textwrap.fill(line, width, subsequent_indent=indent + "  ", break_on_hyphens=False,
                            break_long_words=False) if len(line) > width else line, flush=True)


def short_names(names: Sequence[str], width: int) -> tuple[dict[str, str], list[str]]:
    """Names of at most ``width`` characters for a console column: a longer name becomes its start and a
    number, ``deepseek/synt~1``, explained by a legend line ``~1 = deepseek/synthetic-a``."""
    short, legend = {}, []
    for name in dict.fromkeys(names):
        if len(name) <= width:
            short[name] = name
            continue
        key = f"~{len(legend) + 1}"
        short[name] = name[: width - len(key)] + key
        legend.append(f"  {key} = {name}")
    return short, legend


#: Console columns of :func:`console_table` other than the model's: used, excl, raw, posterior, R-hat, ESS.
_TABLE_WIDTH = 8 + 6 + 2 + 22 + 22 + 6 + 7


def console_table(rates: pl.DataFrame, rate: str = "DVGR", below: str = "P(<0.5)", width: int | None = None) -> str:
    """The readable table the CLI ends with (``rates.csv``; ``rate``: the short name of the benchmark's rate;
    ``below``: the header of P(rate < reference), empty when the benchmark has no reference), fitted to ``width``
    columns (default: the terminal's) by shortening model names, with a legend."""
    fixed = _TABLE_WIDTH + (8 if below else 0)
    longest = max((len(m) for m in rates["model"]), default=5)
    column = max(12, min(longest + 2, (width or console_width()) - fixed))
    short, legend = short_names(rates["model"].to_list(), column - 2)
    head = (f"{'model':<{column}}{'used':>8}{'excl':>6}  {f'raw {rate} [Wilson 95%]':<22}"
            f"{f'posterior {rate} [HDI]':<22}" + (f"{below:>8}" if below else "") + f"{'R-hat':>6}{'ESS':>7}")
    lines = [head, "-" * len(head)]
    for r in rates.iter_rows(named=True):
        if r["model"] == "overall":
            lines.append("-" * len(head))
        lines.append(
            f"{short[r['model']]:<{column}}{r['n_used']:>8,}{r['n_excluded']:>6,}  "
            f"{r['raw_rate']:.3f} [{r['wilson_low']:.3f}, {r['wilson_high']:.3f}]  "
            f"{r['rate_mean']:.3f} [{r['rate_hdi_low']:.3f}, {r['rate_hdi_high']:.3f}]  "
            + (f"{r['p_below_reference']:>8.3f}" if below else "")
            + f"{r['r_hat']:>6.3f}{r['ess_bulk']:>7.0f}"
        )
    return "\n".join(lines + legend)


def console_conditions(rates: pl.DataFrame | None, width: int | None = None) -> str:
    """The posterior rate per model x condition (``condition_rates.csv``), each under its own name (HVSB: MR, ASR);
    model names shortened to fit ``width`` columns, with a legend. A model without a trial under a condition
    has a predicted rate there and no raw rate."""
    if rates is None:
        return ""
    widths = {c: max(len(c), *(len(str(x)) for x in rates[c])) + 2 for c in ("condition", "rate")}
    room = (width or console_width()) - widths["condition"] - widths["rate"] - 24 - 7
    widths["model"] = max(12, min(max(len("model"), *(len(m) for m in rates["model"])) + 2, room))
    short, legend = short_names(rates["model"].to_list(), widths["model"] - 2)
    lines = [f"{'model':<{widths['model']}}{'condition':<{widths['condition']}}{'rate':<{widths['rate']}}"
             f"{'posterior [HDI]':<24}{'raw':>7}"]
    lines.append("-" * len(lines[0]))
    for r in rates.iter_rows(named=True):
        observed = r.get("observed", True)
        lines.append(f"{short[r['model']]:<{widths['model']}}{r['condition']:<{widths['condition']}}"
                     f"{r['rate']:<{widths['rate']}}"
                     f"{r['mean']:.3f} [{r['hdi_low']:.3f}, {r['hdi_high']:.3f}]    "
                     + (f"{r['raw_rate']:>7.3f}" if observed else f"{'none':>7}"))
    if "observed" in rates.columns and not rates["observed"].all():
        legend = [*legend, "raw none: no trial under that condition; its rate is predicted from the hierarchy"]
    return "\n".join(lines + legend)


def console_scaling(folder: runfolder.RunFolder, rate: str = "DVGR", test: str = "paper's chi-square") -> str:
    """Pair contrasts and the pooled slope, when the scaling tests ran (``rate``: the benchmark's word)."""
    pair_table, trend = folder.table("scaling_pairs"), folder.table("scaling_trend")
    if pair_table is None:
        return ""
    lines = [f"Scaling (larger minus smaller, posterior {rate} difference [HDI], P(<0); {test} p):"]
    for r in pair_table.iter_rows(named=True):
        lines.append(f"  {r['smaller'] + ' -> ' + r['larger']:<44}{r['diff_mean']:+.3f} [{r['diff_hdi_low']:+.3f}, "
                     f"{r['diff_hdi_high']:+.3f}]  P={r['p_diff_below_0']:.3f}  chi2 p={r['chi2_p']:.2g}")
    if trend is not None:
        t = trend.row(0, named=True)
        lines.append(f"  pooled slope per within-family SD of size ({t['size_measure']}):\n    {t['slope_mean']:+.3f} "
                     f"[{t['slope_hdi_low']:+.3f}, {t['slope_hdi_high']:+.3f}], P(slope<0)={t['p_slope_below_0']:.3f}, "
                     f"BF01={t['bf01']:.2f}")
        checks = folder.scaling_diagnostics()
        if checks is not None and not checks["ok"]:
            lines.append(f"  WARNING: the slope model's sampler checks failed: {'; '.join(checks['failures'])}")
    return "\n".join(lines)


def _pair(text: str) -> tuple[str, str]:
    small, sep, large = text.partition(":")
    if not sep or not small or not large:
        raise argparse.ArgumentTypeError(f"a pair is SMALLER:LARGER (short names), not {text!r}")
    return small, large


EPILOG = f"""\
examples:
  dvbstats fit                                  # the synthetic DVB example, with its report
  dvbstats fit --benchmark hvsb                 # the synthetic HVSB example, with its report
  dvbstats fit results/*.csv --out runs/mine --report --report-dir runs/mine-report
  dvbstats fit judgments.csv --benchmark binary --reference 0.5 --direction higher
  dvbstats fit dumps/ --formula "chose_deep ~ 1 + (1|model) + (1|value) + (1|model:value)"
  dvbstats fit dumps/ --prior "sd=halfnormal(0.5)" --draws 2000 --seed 7
  dvbstats fit dumps/ --prior "b=normal(0,1)" "sd=halfnormal(1)" "cor=lkj(2)"
  dvbstats fit logs/*.eval --scorer match       # Inspect logs (also lm-eval, HELM, Every Eval Ever)
  dvbstats fit math500.csv --wide model \\
      --label-pattern '(?P<model>.+)_(?P<condition>zero_shot|one_shot)'

(python -m dvbstats.fit works too, but it puts the working folder first on Python's import path:
a data folder there named like a module, such as tree/, can break ArviZ's imports.)

exit status: 0 success; 2 bad input or arguments (also an --out that cannot be written); 3 sampler
diagnostics failed (R-hat > {MAX_R_HAT}, ESS < {MIN_ESS} or divergences; the outputs are written and flagged;
--allow-warnings exits 0); 130 interrupted (Ctrl-C): no run folder is left behind.

output: the run folder (--out) holds the tables, posterior.nc, cells.parquet and the ingested
trial table trials.parquet; it appears only when the run is complete, replacing an earlier run
folder at that path whole.
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dvbstats fit",
        description=textwrap.fill(
            "Fit a hierarchical Bayesian logistic model of an LLM benchmark's binary outcomes and report each model's "
            "posterior rate: DVB (deep-value vs shallow-feature choices; the rate is the DVGR), HVSB (judgment trees; "
            "misalignment rate MR without a system prompt, attack success rate ASR under an attack prompt) or any "
            "binary judgments (model, item, 0/1 outcome; the rate of outcome 1). With no PATHS, fits the embedded synthetic published-scale DVB example (9 models x "
        "12,000 prompts), or the synthetic HVSB example with --benchmark hvsb.", 98),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="*", help="harness dumps (.csv, .jsonl/.ndjson, .parquet), folders or globs; "
                   "or aggregated cell tables (n_trials, n_deep per design cell)")
    data = p.add_argument_group("input")
    data.add_argument("--benchmark", choices=list(BENCHMARKS),
                      help="what the input is (default: detected from it); with no PATHS, hvsb fits the embedded "
                      "synthetic HVSB example")
    data.add_argument("--model-column", default="model", help="binary judgments: the model column (default: %(default)s)")
    data.add_argument("--item-column", default="item", help="binary judgments: the item column (default: %(default)s)")
    data.add_argument("--outcome", default="outcome", help="binary judgments: the 0/1 column (default: %(default)s)")
    data.add_argument("--reference", type=float, default=None,
                      help="binary judgments: a reference rate to test against (default: none, so no test)")
    data.add_argument("--direction", choices=["higher", "lower"], default=None,
                      help="binary judgments: which way the rate is better (default: none; ranks say 'highest rate')")

    logs = p.add_argument_group("evaluation logs and wide matrices (binary judgments; docs/sources.md)")
    logs.add_argument("--source", choices=list(sources.FORMATS),
                      help="the input's format (default: detected; wide matrices need --wide)")
    logs.add_argument("--scorer", help="Inspect: the scorer whose values are the outcome (needed when a log has several)")
    logs.add_argument("--metric", help="lm-evaluation-harness: the metric (default: the first 0/1 one); "
                      f"HELM: the stat (default: {DEFAULT_HELM_METRIC})")
    logs.add_argument("--filter", help="lm-evaluation-harness: the filter (needed when a file has several)")
    logs.add_argument("--partial", choices=list(PARTIAL),
                      help="partial credit (Inspect P, scores strictly between 0 and 1): excluded, or counted as 0 "
                      "or 1 (default: not counted, each such row unparsed with its reason)")
    logs.add_argument("--wide", choices=list(WIDE),
                      help="read a wide matrix (CSV/Parquet): its rows are models (header: items) or items "
                      "(header: models); cells 0/1, -1/+1, true/false, blank = not judged")
    logs.add_argument("--label-pattern", metavar="REGEX",
                      help="wide matrices: named groups splitting a model label, e.g. "
                      "'(?P<model>.+)_(?P<condition>zero_shot|one_shot)'; groups other than model become "
                      "design columns")
    data.add_argument("--models", help="model table CSV (model_id, short_name, developer, family, size_rank_in_family, "
                      "params_b); default: the 9 published models")
    data.add_argument("--values", default="", help="extra value names, comma-separated, for benchmarks beyond the 11 DVB values")
    data.add_argument("--keep-empty-models", action="store_true",
                      help="fit models that have no usable trial (every row failed or was unparsed) and count "
                      "them in the overall rate; by default they are left out, with a warning")
    data.add_argument("--on-conflict", choices=["error", "first", "last", "exclude"], default="error",
                      help="when two parsed copies of a prompt disagree: stop (default), keep the first or last copy, "
                      "or exclude all of them")
    model = p.add_argument_group("model")
    model.add_argument("--formula", help=(
        f"R-style formula (default: the benchmark's. DVB: {formulamod.DEFAULT_FORMULA}; HVSB: {HVSB.default_formula}; "
        f"binary: {binary.default_formula('outcome', ('condition',))} with a condition column, else "
        f"{binary.default_formula('outcome', ())})").replace("%", "%%"))
    model.add_argument("--prior", action="extend", nargs="+", default=[], metavar="NAME=DIST(...)",
                       help="override priors, one or several after each --prior, quoted for the shell: "
                       "--prior \"sd=halfnormal(0.5)\" \"sd_value=exponential(2)\" \"b_log_n_train=normal(0,0.5)\" "
                       "\"intercept=normal(0,2)\" (defaults in docs/model.md)")
    model.add_argument("--parametrization", choices=PARAMETRIZATIONS, default="auto", metavar="NAME",
                       help=f"random-effect parametrisation, one of {', '.join(PARAMETRIZATIONS)} (default: %(default)s, "
                       "which chooses each term's form by "
                       f"the trials its levels hold: zero-sum centred from {CENTRED_MIN_TRIALS} per level, non-centred "
                       "below, item-level terms on a signed scale, a benchmark's measured form on data as deep as it "
                       "was measured on, a short pilot where slopes may or may not vary; a fit that fails its checks "
                       "is sampled again at a higher target acceptance, with more draws, then in another form; see "
                       "docs/model.md. A form named here is sampled as asked, once)")
    sampling = p.add_argument_group("sampler")
    sampling.add_argument("--sampler", choices=["nutpie", "pymc"], default="nutpie", help="default: %(default)s")
    sampling.add_argument("--draws", type=int, default=DRAWS, help="posterior draws per chain (default: %(default)s)")
    sampling.add_argument("--tune", type=int, default=TUNE, help="tuning draws per chain (default: %(default)s)")
    sampling.add_argument("--chains", type=int, default=CHAINS, help="default: %(default)s")
    sampling.add_argument("--seed", type=int, default=SEED, help="seed of sampling and predictions (default: %(default)s)")
    sampling.add_argument("--target-accept", type=float, default=None,
                          help="NUTS target acceptance rate; raise it (0.9-0.99) when a fit reports divergences "
                          "(default: 0.8 when every random term is centred, 0.95 when one is non-centred, 0.99 "
                          "when the slope columns of a term with fewer than 6 levels are)")
    sampling.add_argument("--allow-warnings", action="store_true", help="exit 0 even when sampler diagnostics fail")
    output = p.add_argument_group("output")
    output.add_argument("--out", type=Path, help="run folder (default: runs/<name>); written in a temporary "
                        "sibling folder and swapped in when complete, so a failed or interrupted run leaves no "
                        "folder and a re-run replaces an earlier run's folder whole (never mixes files)")
    output.add_argument("--overwrite", action="store_true",
                        help="allow --out to replace a non-empty folder that is not a dvbstats run folder "
                        "(without it such a folder is refused)")
    output.add_argument("--name", help="run name, used for <report dir>/<name>/ (default: the --out folder's name; "
                        "else from the input file names; 'default' for the example)")
    output.add_argument("--hdi", type=float, default=HDI_PROB, help="mass of the highest-density intervals (default: %(default)s)")
    output.add_argument("--scaling", action=argparse.BooleanOptionalAction, default=None,
                        help="scaling-trend tests (default: on when a model family has two sizes)")
    output.add_argument("--pairs", type=_pair, nargs="+", metavar="SMALLER:LARGER",
                        help="explicit model pairs (short names) for the scaling tests (default: adjacent sizes within families)")
    output.add_argument("--contrast", action="append", default=[], metavar="A-B",
                        help="posterior difference of the design-averaged rate (DVB: DVGR; HVSB: MR or ASR under its "
                        "condition; binary: P(outcome = 1)) between two models (A-B) or two levels of another factor "
                        "(FACTOR:A-B, e.g. condition:targeted-untargeted), repeatable; written to contrasts.csv")
    output.add_argument("--contrasts", choices=[contrastmod.ALL], help="all: every pair of models in contrasts.csv")
    output.add_argument("--rope", type=float, metavar="W",
                        help="region of practical equivalence, in rate units (a difference of proportions, "
                        "0 < W < 1; 0.05 = 5 percentage points of DVGR, MR, ASR or rate): contrasts.csv gains "
                        "P(|difference| < W)")
    output.add_argument("--agreement", action=argparse.BooleanOptionalAction, default=True,
                        help="agreement between models, paired McNemar tests and the same-family model "
                        "(default: on when a trial table has two models or more)")
    output.add_argument("--prior-predictive", action="store_true",
                        help="also write prior_predictive.csv: the rates the priors alone expect, beside the data")
    output.add_argument("--report", action=argparse.BooleanOptionalAction, default=None,
                        help="render <report dir>/<run>/report.html (default: on for the no-argument example run)")
    output.add_argument("--report-dir", type=Path, default=Path("reports"), metavar="DIR",
                        help="where --report writes <run>/report.html (default: reports/ under the working folder)")
    output.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; a Ctrl-C anywhere ends it with status 130 and one line, never a traceback."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # during sampling or saving _main says so itself; here, before or after the run
        print("\ninterrupted: a run folder already written is complete and kept; a run stopped while sampling "
              "or saving leaves none", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    if not 0 < args.hdi < 1:
        parser().error("--hdi must be between 0 and 1")
    if args.target_accept is not None and not 0 < args.target_accept < 1:
        parser().error("--target-accept must be between 0 and 1")
    if args.rope is not None and not 0 < args.rope < 1:
        parser().error("--rope must be between 0 and 1 (a difference of rates)")
    for option in ("draws", "tune", "chains"):
        if getattr(args, option) < 1:
            parser().error(f"--{option} must be a positive whole number")
    if not 0 <= args.seed < 2**32:
        parser().error(f"--seed must be a whole number from 0 to {2**32 - 1}, not {args.seed}")
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        out, result = run(
            args.paths or None, out=args.out, name=args.name, formula=args.formula, models=args.models,
            priors=args.prior, values=[v.strip() for v in args.values.split(",") if v.strip()],
            on_conflict=args.on_conflict, draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
            target_accept=args.target_accept,
            sampler=args.sampler, parametrization=args.parametrization, hdi_prob=args.hdi, scaling=args.scaling,
            pairs=args.pairs, contrasts=[*args.contrast, *([args.contrasts] if args.contrasts else [])],
            rope=args.rope, agreement=args.agreement, prior_predictive=args.prior_predictive, report=args.report if args.report is not None else not args.paths,
            report_dir=args.report_dir,
            overwrite=args.overwrite, keep_empty_models=args.keep_empty_models,
            command=manifest.portable_command("dvbstats.fit", argv), progress=not args.quiet,
            benchmark=args.benchmark, log=say,
            columns={"model_column": args.model_column, "item_column": args.item_column, "outcome": args.outcome,
                     **({"reference": args.reference} if args.reference is not None else {}),
                     **({"direction": args.direction} if args.direction else {})},
            reading={"format": args.source, "scorer": args.scorer, "metric": args.metric, "filter": args.filter,
                     "partial": args.partial, "wide": args.wide, "label_pattern": args.label_pattern},
        )
    except ReportInterrupted as exc:
        print(f"\ninterrupted while rendering the report: the run folder {exc.kept} is complete and was kept "
              f"(render its report with python -m dvbstats.report {exc.kept}); no partial report was left behind",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("\ninterrupted: no partial run folder or report was left behind", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (IngestError, formulamod.FormulaError, PriorError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder that cannot be written, a file that vanished, a full disk
        where = f"{exc.filename}: " if exc.filename else ""
        full = " (the disk is full: free some space or choose another --out; nothing was left behind)" if (
            exc.errno == errno.ENOSPC) else ""
        print(f"error: {where}{exc.strerror or exc}{full}", file=sys.stderr)
        return 2
    except pl.exceptions.PolarsError as exc:  # polars reports a failed write (a full disk) as its own error
        print(f"error: {str(exc).splitlines()[0]} (no partial run folder was left behind)", file=sys.stderr)
        return 2
    folder = runfolder.RunFolder.read(out)
    print()
    bench = result.data.benchmark
    rates = folder.table("rates")
    condition = rates["condition"][0] if "condition" in rates.columns else None
    rate = bench.rate_label(condition)
    short = "DVGR" if rate == "DVGR" else "rate"
    where = f"under condition {condition}" if condition else "averaged over the design"
    say(f"Posterior {rate} per model, {where} ({args.hdi:.0%} HDI; ranks by {bench.best}), formula: {result.formula}")
    print(console_table(rates, short, f"P(<{bench.reference:g})" if bench.reference is not None else ""))
    by_condition = console_conditions(folder.table("condition_rates"))
    if by_condition:
        say(f"\nPosterior rate per model and condition ({args.hdi:.0%} HDI; paired contrasts in "
            "condition_effects.csv):")
        print(by_condition)
    scaling_lines = console_scaling(folder, rate, "paper's chi-square" if bench.size_codings else "chi-square")
    if scaling_lines:
        say("\n" + scaling_lines)
    print(f"\nRun folder: {out}")
    diag = result.diagnostics
    if not diag.ok:
        print("\n" + "!" * 78, file=sys.stderr)
        print("SAMPLER DIAGNOSTICS FAILED — do not trust these numbers yet:", file=sys.stderr)
        for failure in diag.failures:
            print(f"  - {failure}", file=sys.stderr)
        print("Try a higher --target-accept (divergences), more --tune/--draws (R-hat, ESS),\n"
              "another --parametrization, or tighter priors.", file=sys.stderr)
        print("!" * 78, file=sys.stderr)
        return 0 if args.allow_warnings else EXIT_DIAGNOSTICS
    print(f"Diagnostics OK: max R-hat {diag.summary()['max_r_hat']:.3f}, min bulk ESS "
          f"{diag.summary()['min_ess_bulk']:.0f}, {diag.divergences} divergences.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
