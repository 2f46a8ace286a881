"""Reanalysis of the Deep Value Benchmark paper (Ashkinaze et al., NeurIPS 2025) from its published aggregates.

    python -m dvbstats.paper2025.reanalysis [--quick] [--draws N] [--tune N] [--chains N] [--seed N] [--no-report]
                                          [--processed DIR] [--out DIR] [--reports DIR]

Steps: rebuild the model x value binomial counts from the published figures shipped with the package (``dvbstats.paper2025.reconstruct``;
written to ``data/processed/dvb2025/``), fit ``chose_deep ~ 1 + (1|model) + (1|value) + (1|model:value)``
to them with the paper's five size pairs for the scaling tests (``dvbstats.api`` and ``dvbstats.pipeline``; run folder
``runs/dvb2025_reanalysis/``), add the sections "Published vs reanalysis" and "Reconstruction"
(``dvbstats.paper2025.claims``) and "Value audit" (``dvbstats.paper2025.value_audit``: the paper's rating regression
replicated and its hierarchical Bayesian version, a second, small fit) and render ``reports/dvb2025_reanalysis/report.html``.
The output folders are relative to the working directory (run it at the repository root to update
the committed report). Exit status 3 when the sampler diagnostics fail
(unless ``--allow-warnings``), 2 on bad input.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from dvbstats.api import Model, load
from dvbstats.constants import CHAINS, DRAWS, EXIT_DIAGNOSTICS, SEED, TUNE
from dvbstats.input.runfolder import RunFolder
from dvbstats.model.sample import SamplerSettings
from dvbstats.paper2025 import claims as published, value_audit
from dvbstats.report.markdown import callout
from dvbstats.paper2025.reconstruct import (
    DEFAULT_ROOT,
    PublishedDataError,
    ReconstructionError,
    published_aggregates,
    reconstruct,
)
from dvbstats.pipeline import Analysis
from dvbstats.report import render

NAME = "dvb2025_reanalysis"
FORMULA = "chose_deep ~ 1 + (1|model) + (1|value) + (1|model:value)"
PROCESSED = Path("data/processed/dvb2025")
OUT = Path("runs") / NAME
REPORTS = Path("reports")
#: ``--quick``: enough for a look and for the tests, not for the committed report.
QUICK = {"draws": 300, "tune": 300, "chains": 2, "audit_draws": 300}
SECTIONS = {"findings": "00_findings.md", "published": "01_published_vs_reanalysis.md",
            "reconstruction": "02_reconstruction.md", "audit": "03_value_audit.md"}
#: The value audit's fit tunes and draws at least this long per chain: its rating slopes trade off
#: against the value effects; with 1000 tuning and 1000 draws R-hat of the slopes was 1.03 and bulk ESS
#: 475, with 2000 and 2000 at most 1.004 and at least 940 (measured on the reconstructed counts).
AUDIT_MIN_DRAWS = 2000


def reanalyse(
    *,
    root: Path = DEFAULT_ROOT,
    processed: Path = PROCESSED,
    out: Path = OUT,
    reports: Path | None = REPORTS,
    draws: int = DRAWS,
    tune: int = TUNE,
    chains: int = CHAINS,
    seed: int = SEED,
    audit_draws: int = AUDIT_MIN_DRAWS,
    progress: bool = False,
    command: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Reconstruct, fit, compare with the paper and (unless ``reports`` is None) render; return the run folder.

    The value audit's fit draws and tunes at least ``audit_draws`` per chain. Besides the fit's run
    folder this writes ``sections/`` (the three report sections),
    ``published_vs_reanalysis.csv`` (the claims table), ``reconstruction_residuals.csv``
    (every published figure against the reconstruction) and the value audit's ``value_audit_*.csv``.
    """
    agg = published_aggregates(root)
    rec = reconstruct(agg)
    rec.write(processed)
    log(f"Reconstructed {rec.cells.height} model x value cells from {root}; written to {processed}/cells.csv")
    model = Model(FORMULA, load([processed / "cells.csv"]))
    analysis = Analysis(scaling=True, pairs=published.paper_pairs(agg))
    analysis.check(model)  # the paper's pairs against the model table, before sampling
    log(f"Fitting {model.formula} ({chains} chains x {draws} draws, {tune} tuning)...")
    fit = model.fit(draws=draws, tune=tune, chains=chains, seed=seed, progress=progress)
    run_dir = fit.save(out, name=NAME, analyses=analysis.run(fit, log), command=command, processed=processed,
                       log=log)
    folder = RunFolder.read(run_dir)

    tables = published.RunTables.read(run_dir)
    folder.add_section(SECTIONS["published"], published.section(tables, agg))
    folder.add_section(SECTIONS["reconstruction"], published.reconstruction_section(rec.method, rec.residuals))
    folder.add_table("published_vs_reanalysis", published.claims_table(published.claims(tables, agg)))
    folder.add_table("reconstruction_residuals", rec.residuals)
    ratings = value_audit.read_ratings(root / value_audit.RATINGS_FILE)
    audit = value_audit.run_audit(
        rec.cells, ratings, hdi_prob=tables.hdi_prob, progress=progress,
        settings=SamplerSettings(draws=max(draws, audit_draws), tune=max(tune, audit_draws), chains=chains, seed=seed),
    )
    audit.write(folder)
    folder.add_section(SECTIONS["audit"], audit.section())
    folder.add_section(SECTIONS["findings"], findings_section(
        published.claims(tables, agg), value_audit.audit_verdict(audit.logit, audit.bayes), tables.formula))
    log(f"Value audit: replication {value_audit.replication_verdict(audit.logit)}. "
        + audit.diagnostics_sentence())
    if reports is not None:
        html = render(run_dir, reports)
        log(f"Report: {html} ({html.stat().st_size / 2**20:.2f} MiB)")
    return run_dir


#: Verdicts that say a claim holds (with or without caution); the rest hold in part or do not.
HOLDS = (published.AGREES, published.AGREES_CAUTIOUS, published.WITHIN_UNCERTAINTY)
_SENTENCE_END = re.compile(r"(?<=[a-z)\]])\. (?=[A-Z])")


def _why(claim: published.Claim) -> str:
    """The reason in one place: where the Bayesian answer is more cautious, that; else the claim's first sentence."""
    if claim.caution:
        return claim.caution
    first = _SENTENCE_END.split(" ".join(claim.notes), maxsplit=1)[0]
    return first if first.endswith(".") else first + "."


def findings_section(items: Sequence[published.Claim], audit: value_audit.AuditVerdict, formula: str) -> str:
    """The section that opens the report: what the data are, which of the paper's claims hold, which do not
    and why (the detail follows in "Published vs reanalysis", "Reconstruction" and "Value audit")."""
    groups = (("Hold", [c for c in items if c.verdict in HOLDS]),
              ("Hold in part", [c for c in items if c.verdict == published.PARTLY]),
              ("Do not hold or are not established", [c for c in items
                                                      if c.verdict not in HOLDS and c.verdict != published.PARTLY]))
    blocks = [
        "# What the reanalysis finds {#sec-findings}",
        "The paper's headline claims set against a hierarchical Bayesian fit to model × value **counts reconstructed "
        "from its published aggregates** (its trial-level data are not public).",
    ]
    for title, claims in groups:
        if claims:
            blocks.append(f"**The paper's claims that {title.lower()}:**\n\n" + "\n".join(
                f"- **{c.claim}** ({c.verdict}{', borderline' if c.borderline else ''}; paper: {c.paper}; "
                f"reanalysis: {c.reanalysis}). {_why(c)}" + (f" The verdict is {c.borderline}." if c.borderline else "")
                for c in claims))
    # a borderline note carries parentheses of its own: it follows the verdict after a dash (a dimension) or
    # in a sentence of its own (a claim), never inside the summary's parentheses, so they nest at most two deep
    dimensions = "; ".join(f"{d.term} ({d.paper} in the paper): {d.verdict}"
                           + (f" — {d.borderline}" if d.borderline else "") for d in audit.dimensions)
    blocks.append(f"**The value audit** (the paper's regression of DVGR on value ratings): its clustered logit is "
                  f"{audit.replication} from the reconstructed counts; with values as a random sample "
                  f"(Bayesian): {dimensions} (@sec-value-audit).")
    blocks.append(callout(
        "note", "The data",
        "Every number in this report comes from the reconstructed counts (@sec-reconstruction: how, and how closely "
        f"they match every published figure), fitted with `{formula}`. The counts have no feature, context or "
        "prompt columns, so only models and values are modelled. Claim by claim, with the rules behind each "
        "verdict: @sec-published-vs-reanalysis; the sections between are the standard DVB report of the fit."))
    return "\n\n".join(blocks) + "\n"


def console_summary(folder: RunFolder, width: int) -> str:
    """What the command ends with, within ``width`` columns: DVGR per model, then each published claim with its
    verdict and both sides' figures wrapped under it (the claims table's text is too long for table columns)."""
    with pl.Config(tbl_rows=-1, tbl_width_chars=width, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True, float_precision=3):
        rates = folder.table("rates").select(
            "model", pl.col("n_used").alias("trials"), pl.col("rate_mean").alias("DVGR"),
            pl.col("rate_hdi_low").alias("HDI low"), pl.col("rate_hdi_high").alias("HDI high"),
            pl.col("r_hat").alias("R-hat"), pl.col("ess_bulk").round().cast(pl.Int64).alias("ESS"))
        lines = [str(rates), "", "Published claims:"]
    wrap = textwrap.TextWrapper(width=max(width, 40), initial_indent="    ", subsequent_indent="      ",
                                break_long_words=False, break_on_hyphens=False)
    for claim in folder.table("published_vs_reanalysis").iter_rows(named=True):
        borderline = " (borderline)" if claim.get("borderline") else ""
        lines += [*textwrap.wrap(f"- {claim['claim']}: {claim['verdict']}{borderline}", max(width, 40),
                                 subsequent_indent="  "),
                  *wrap.wrap(f"paper: {claim['paper']}"), *wrap.wrap(f"reanalysis: {claim['reanalysis']}")]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dvbstats.paper2025.reanalysis",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK['chains']} chains x {QUICK['draws']} draws ({QUICK['tune']} tuning): a fast look")
    p.add_argument("--draws", type=int, default=DRAWS, help="posterior draws per chain")
    p.add_argument("--tune", type=int, default=TUNE, help="tuning draws per chain")
    p.add_argument("--chains", type=int, default=CHAINS)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--no-report", action="store_true", help="skip rendering report.html")
    p.add_argument("--processed", type=Path, help=f"folder for the reconstructed cell table (default: {PROCESSED})")
    p.add_argument("--out", type=Path, help=f"run folder (default: {OUT})")
    p.add_argument("--reports", type=Path, help=f"reports folder; the report goes to REPORTS/{NAME} (default: {REPORTS})")
    p.add_argument("--allow-warnings", action="store_true", help="exit 0 even when sampler diagnostics fail")
    p.add_argument("--progress", action="store_true", help="show the sampler's progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    settings = QUICK if args.quick else {"draws": args.draws, "tune": args.tune, "chains": args.chains}
    processed, out, reports = args.processed or PROCESSED, args.out or OUT, args.reports or REPORTS
    try:
        run_dir = reanalyse(
            processed=processed, out=out, reports=None if args.no_report else reports,
            seed=args.seed, progress=args.progress,
            command=["python", "-m", "dvbstats.paper2025.reanalysis", *argv], **settings,
        )
    except (PublishedDataError, ReconstructionError, published.ComparisonError, value_audit.RatingsError,
            ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    folder = RunFolder.read(run_dir)
    print(console_summary(folder, shutil.get_terminal_size((100, 24)).columns))
    diagnostics = folder.diagnostics
    if not diagnostics["ok"]:
        print("SAMPLER DIAGNOSTICS FAILED: " + "; ".join(diagnostics["failures"]), file=sys.stderr)
        return 0 if args.allow_warnings else EXIT_DIAGNOSTICS
    return 0


if __name__ == "__main__":
    sys.exit(main())
