"""Rendering a run folder to ``reports/<run>/report.qmd`` and a self-contained ``report.html``.

Two engines render the same ``.qmd``:

- ``quarto`` (used when the ``quarto`` CLI is on PATH): ``quarto render report.qmd``; the YAML
  header asks for ``embed-resources: true``, a table of contents and numbered sections.
- ``pandoc`` (the fallback, and what the tests run): the Pandoc shipped in the
  ``pypandoc-binary`` wheel with ``--standalone --embed-resources``, the same options as the
  header, the style sheet ``report.css``, and the Lua filter ``quarto.lua`` that implements the
  Quarto constructs the report uses (callouts and numbered figure/table/section references).
  It runs sandboxed, with raw HTML off, behind the filter ``sandbox.lua`` (:func:`render_pandoc`).

Every string from data, names, paths and the manifest enters the ``.qmd`` through
:mod:`dvbstats.report.markup`, so it shows as text under either engine.

Either way the HTML has every figure inlined as a data URI and loads nothing from the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib import metadata
from importlib.resources import as_file, files
from pathlib import Path
from typing import Literal

from dvbstats.input import folders
from dvbstats.input.runfolder import MARKER, RunFolder
from dvbstats.report.build import CSS, report_markdown

Engine = Literal["auto", "quarto", "pandoc"]
ENGINES: tuple[str, ...] = ("auto", "quarto", "pandoc")
QMD, HTML = "report.qmd", "report.html"
#: Oldest Pandoc with --embed-resources and the Figure element the filter numbers.
MIN_PANDOC = (3, 0)
#: Seconds an engine may take before it is stopped (a 9-model report renders in a few).
TIMEOUT = 300


class RenderError(RuntimeError):
    """An engine failed or is not available."""


def render(run_dir: str | Path, out_root: str | Path = Path("reports"), *, engine: Engine = "auto") -> Path:
    """Render the finished run in ``run_dir``; return the path of ``report.html``.

    Writes ``<out_root>/<run name>/report.qmd``, its ``figures/`` and ``report.css``, then
    ``report.html``; a run name that is not one folder name (``../x``, ``a/b``) is refused. Reads
    only the run folder (nothing is refitted). ``engine="auto"`` uses Quarto when the ``quarto``
    CLI is on PATH and Pandoc otherwise. The report folder is built
    beside its place and swapped in when rendered (:mod:`dvbstats.input.folders`): a failed render
    leaves the previous report as it was, and a re-render keeps no file of the previous one.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    run = RunFolder.read(run_dir)
    report_dir = Path(out_root) / folders.folder_name(run.name, what=f"{run.path / MARKER}: run_name")
    chosen = ("quarto" if shutil.which("quarto") else "pandoc") if engine == "auto" else engine
    with folders.replacing(report_dir, marker=QMD, option="report folder") as work:
        qmd = write_qmd(run, work)
        render_quarto(qmd) if chosen == "quarto" else render_pandoc(qmd)
    return report_dir / HTML


def write_qmd(run: RunFolder, report_dir: Path) -> Path:
    """Write ``report.qmd``, its figures and the style sheet into ``report_dir``."""
    text = report_markdown(run, report_dir)
    (report_dir / CSS).write_bytes(files("dvbstats.report").joinpath(CSS).read_bytes())
    qmd = report_dir / QMD
    qmd.write_text(text, encoding="utf-8")
    return qmd


def _run(command: list[str], cwd: Path, what: str) -> None:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise RenderError(f"{what} failed to run: {err}") from None
    if done.returncode != 0:
        raise RenderError(f"{what} exited with status {done.returncode}:\n{done.stderr.strip()}")


def render_quarto(qmd: Path) -> Path:
    """Render ``qmd`` with the quarto CLI (self-contained HTML beside it)."""
    quarto = shutil.which("quarto")
    if quarto is None:
        raise RenderError("engine 'quarto' requested but the quarto CLI is not on PATH; use engine='pandoc'")
    _run([quarto, "render", qmd.name, "--to", "html", "--output", HTML], qmd.parent, "quarto render")
    return qmd.parent / HTML


def pandoc_path() -> str:
    """The Pandoc binary to render with, checked to be new enough: ``$PYPANDOC_PANDOC`` when set (pypandoc's
    override), else the one the ``pypandoc-binary`` wheel ships (found in the wheel's file list, so pypandoc
    itself, 60 ms of imports, is not loaded), else ``pandoc`` on PATH."""
    path = os.environ.get("PYPANDOC_PANDOC") or _bundled_pandoc() or shutil.which("pandoc")
    if path is None:
        raise RenderError("no pandoc found: install pypandoc-binary (or Pandoc >= 3.0 on PATH)")
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60, check=True)
        version = tuple(int(p) for p in done.stdout.split()[1].split(".")[:2])
    except (OSError, subprocess.SubprocessError, IndexError, ValueError) as err:
        raise RenderError(f"pandoc at {path} does not run ({err}); install pypandoc-binary") from None
    if version < MIN_PANDOC:
        raise RenderError(f"pandoc {'.'.join(map(str, version))} at {path} is too old; need >= 3.0")
    return path


def _bundled_pandoc() -> str | None:
    """The ``pandoc`` executable in the installed ``pypandoc-binary`` wheel's files, or None."""
    try:
        shipped = metadata.distribution("pypandoc_binary").files or []
    except metadata.PackageNotFoundError:
        return None
    found = [f for f in shipped if f.name in ("pandoc", "pandoc.exe") and f.parent.name == "files"]
    return str(found[0].locate()) if found and Path(found[0].locate()).is_file() else None


def render_pandoc(qmd: Path) -> Path:
    """Render ``qmd`` with Pandoc, sandboxed, the Quarto constructs handled by ``quarto.lua``.

    Pandoc runs with ``--sandbox`` (it reads no file but ``qmd``) in the report folder, with raw
    HTML and raw blocks off: ``sandbox.lua`` gives it the report's own figures and style sheet and
    drops any other image, unsafe link or attribute, so the HTML carries nothing from outside the
    report folder whatever the run's names, paths and sections hold.
    """
    report = files("dvbstats.report")
    with as_file(report.joinpath("sandbox.lua")) as guard, as_file(report.joinpath("quarto.lua")) as lua:
        _run(
            [
                pandoc_path(), qmd.name,
                "--sandbox", "--resource-path=.",
                "--from", "markdown-raw_html-raw_attribute-raw_tex", "--to", "html5",
                "--standalone", "--embed-resources",
                "--toc", "--toc-depth=2", "--number-sections",
                "--lua-filter", str(guard),
                "--lua-filter", str(lua),
                "--output", HTML,
            ],
            qmd.parent,
            "pandoc",
        )
    return qmd.parent / HTML
