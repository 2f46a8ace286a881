"""Reports of a finished run: ``report.qmd`` (Quarto) and a self-contained ``report.html``.

``render(run_dir)`` reads a run folder written by ``python -m dvbstats.fit`` and never refits;
``python -m dvbstats.report RUN_DIR`` is the command-line form.
"""

from dvbstats.input.runfolder import RunFolder, RunFolderError
from dvbstats.report.render import ENGINES, RenderError, render

__all__ = ["ENGINES", "RenderError", "RunFolder", "RunFolderError", "render"]
