"""The report's methods (formula, priors, sampler, estimands, input files, versions) and the run's own sections
(``sections/*.md``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePath

import pandas as pd

from dvbstats.input.runfolder import RunFolder, RunFolderError
from dvbstats.model import plan
from dvbstats.report import markup
from dvbstats.report.markdown import FIGURES, fmt_date, fmt_int, fmt_timing, md_table, section
from dvbstats.report.markup import text as escape
from dvbstats.report.wording import Wording, wording


#: Input files listed one by one up to this many; more are counted per folder (all are in manifest.json).
MAX_LISTED = 12
#: A run's own section (``sections/*.md``) whose file name starts with this opens the report.
LEAD = "00_"


def _section_title(path: Path) -> str:
    stem = re.sub(r"^\d+[-_ ]*", "", path.stem) or path.stem
    return stem.replace("_", " ").replace("-", " ").strip().capitalize()


def _own_file(run: RunFolder, path: Path) -> Path:
    """``path`` when it is a regular file inside the run folder (after following links)."""
    if not (path.is_file() and path.resolve().is_relative_to(run.path.resolve())):
        raise RunFolderError(f"{path}: not a file inside the run folder (a link to {path.resolve()}?); a report "
                             "embeds only its run's own files")
    return path


def extra_sections(run: RunFolder, report_dir: Path, *, lead: bool = False) -> list[str]:
    """The run's ``sections/*.md``, each its own section (its first ``#`` heading, else its file name): with
    ``lead``, those whose file name starts with :data:`LEAD` (they open the report: an analysis's findings),
    else the others (after the benchmark's sections).

    Figures a section links as ``figures/<name>.png`` live in the run's ``sections/figures/`` and are
    copied beside the report's own figures. A section or figure that is not a file inside the run
    folder (a link pointing elsewhere) is refused: a report carries only its run's own files."""
    for png in sorted((run.path / "sections" / FIGURES).glob("*.png")):
        (report_dir / FIGURES).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_own_file(run, png), report_dir / FIGURES / png.name)
    out = []
    for path in (p for p in run.extra_sections() if p.name.startswith(LEAD) == lead):
        text = _own_file(run, path).read_text(encoding="utf-8").strip()
        if not text.startswith("# "):
            label = re.sub(r"[^a-z0-9]+", "-", _section_title(path).lower()).strip("-")
            text = f"# {escape(_section_title(path))} {{#sec-{label}}}\n\n{text}"
        out.append(text)
    return out


def estimands(w: Wording) -> tuple[tuple[str, str], ...]:
    """The estimands the report names, in the benchmark's words (its own list when it words one: DVB's)."""
    if w.estimands:
        return w.estimands
    rate = w.rate
    named = tuple((name, f"the {w.rate} under the {escape(level)} condition.")
                  for level, name in w.rate_by_condition.items())
    reference = (f"{w.reference:g} is {escape(w.reference_label)}." if w.reference is not None else
                 "The benchmark has no reference rate: no test against one, no P(rate below it).")
    direction = {"higher": "Higher is better", "lower": "Lower is better"}.get(
        w.direction, "The benchmark states no direction: ranks order models by the highest rate, no rate is called best")
    return (
        (rate, f"{escape(w.rate_long)}: the probability that the model {escape(w.outcome_phrase)}. {reference} "
               f"{direction}."),
        *((("Primary estimands", escape(w.primary[:1].upper() + w.primary[1:]) + "."),) if w.primary else ()),
        *named,
        (f"Raw {rate}", "trials with the outcome / used trials, with the Wilson score interval."),
        (f"Posterior {rate}", "the rate averaged over the design cells of the data (per model, or per model and "
                              "condition), computed per posterior draw; reported as mean and HDI."),
        ("Condition contrast", "the posterior difference of two conditions' rates for one model, per draw "
                               "(paired: the same items under both conditions)."),
        ("Random-effect SD", "the standard deviation between levels of a grouping factor on the log-odds scale."),
    )


def methods(run: RunFolder) -> str:
    """Section 10: everything needed to reproduce the run."""
    m = run.manifest
    sampler = m.get("sampler", {})
    blocks = [f"Formula:\n\n{markup.code_block(m['formula'])}"]
    priors = m.get("priors") or {}
    if priors:
        blocks.append(md_table(pd.DataFrame({"Parameter": [escape(k) for k in priors],
                                             "Prior": [markup.code(v) for v in priors.values()]}),
                               caption="Priors.", label="priors", align="ll"))
    terms = (m.get("parametrization") or {}).get("terms", {})
    settings = {**sampler, "hdi_prob": m["hdi_prob"], **{f"parametrisation of ({t.replace('__', ':')})": k
                                                          for t, k in terms.items()},
                **dict(plan.describe(m["sampling"]) if m.get("sampling") else ())}
    blocks.append(md_table(
        pd.DataFrame({"Setting": [escape(k) for k in settings], "Value": [escape(v) for v in settings.values()]}),
        caption=f"Sampler settings (seed {escape(sampler.get('seed', 'not recorded'))}).", label="sampler", align="ll"))
    blocks.append("Estimands:\n\n" + "\n".join(f"- **{escape(name)}**: {text}"
                                                for name, text in estimands(wording(run.manifest))))
    blocks.append(input_files(m.get("inputs") or []))
    versions = m.get("versions") or {}
    if versions:
        blocks.append(md_table(pd.DataFrame({"Package": [escape(k) for k in versions],
                                             "Version": [escape(v) for v in versions.values()]}),
                               caption="Package versions.", label="versions", align="ll"))
    command = m.get("command")
    details = [("Command", markup.code(shlex.join(map(str, command)) if isinstance(command, list) else command)
                if command else None),
               ("Created", escape(fmt_date(m["created"])) if m.get("created") else None),
               ("Run folder", markup.code(run.path)),
               ("Timing", fmt_timing(m["timing"]) if m.get("timing") else None)]
    blocks.append("\n".join(f"- **{k}**: {v}" for k, v in details if v))
    return section("Methods", "methods", *blocks)


def combined_sha256(inputs: Sequence[dict]) -> str:
    """One hash for all input files: the SHA-256 of their SHA-256 hashes, sorted, one per line (independent of
    where the files lie; ``jq -r '.inputs[].sha256' manifest.json | sort | sha256sum`` gives it again)."""
    lines = "".join(f"{h}\n" for h in sorted(str(i.get("sha256", "")) for i in inputs))
    return hashlib.sha256(lines.encode()).hexdigest()


def input_folders(inputs: Sequence[dict], max_rows: int = MAX_LISTED) -> pd.DataFrame:
    """Input files counted by folder below their common folder: ``folder, files, sub_folders, rows``, at the
    shallowest folder level giving the most rows up to ``max_rows`` (``sub_folders``: distinct folders holding files
    at or below it, e.g. an HVSB dataset's model x condition folders)."""
    parents = [PurePath(str(i.get("path", ""))).parent for i in inputs]
    root = PurePath(os.path.commonpath([str(p) for p in parents])) if parents else PurePath()
    relative = [p.relative_to(root).parts for p in parents]
    table = pd.DataFrame({"parts": relative, "rows": [i.get("n_rows") for i in inputs]})
    counts = {d: len({r[:d] for r in relative}) for d in range(1, max(map(len, relative), default=0) + 1)}
    fits = [d for d, n in counts.items() if n <= max_rows] or [1]
    depth = min(fits, key=lambda d: (-counts.get(d, 1), d)) if counts else 0
    table["folder"] = ["/".join(r[:depth]) or "." for r in relative]
    table["leaf"] = ["/".join(r) for r in relative]
    return (table.groupby("folder", sort=True)
            .agg(files=("leaf", "size"), sub_folders=("leaf", "nunique"), rows=("rows", "sum"))
            .reset_index())


def input_files(inputs: Sequence[dict]) -> str:
    """The input files: listed with their hashes when few, else counted per folder with one combined hash (the
    full list is in the run's ``manifest.json``, key ``inputs``)."""
    if not inputs:
        return ""
    if len(inputs) <= MAX_LISTED:
        return md_table(pd.DataFrame({
            "File": [markup.code(i.get("path", "")) for i in inputs],
            "Format": [escape(i.get("format", "")) for i in inputs],
            "Rows": [fmt_int(i.get("n_rows", float("nan"))) for i in inputs],
            "SHA-256": [markup.code(i.get("sha256", "")) for i in inputs],
        }), caption="Input files and their SHA-256 hashes.", label="inputs", align="llrl")
    folders = input_folders(inputs)
    parents = [str(PurePath(str(i.get("path", ""))).parent) for i in inputs]
    root = os.path.commonpath(parents)
    formats = ", ".join(sorted({escape(i.get("format", "")) for i in inputs}))
    total = sum(i.get("n_rows") or 0 for i in inputs)
    summary = (f"{len(inputs):,} input files ({formats}) under {markup.code(root)}, {fmt_int(total)} rows in all; "
               f"combined SHA-256 {markup.code(combined_sha256(inputs))} (the SHA-256 of the files' hashes, sorted, one per "
               "line). Every file with its own hash and row count is in the run folder's `manifest.json` "
               "(key `inputs`).")
    return summary + "\n\n" + md_table(pd.DataFrame({
        "Folder": [markup.code(f) for f in folders["folder"]],
        "Files": [fmt_int(n) for n in folders["files"]],
        "Folders": [fmt_int(n) for n in folders["sub_folders"]],
        "Rows": [fmt_int(n) for n in folders["rows"]],
    }), caption=f"Input files per folder below {markup.code(root)} (Folders: the folders holding them).", label="inputs")
