"""``python -m dvbstats.report RUN_DIR``: re-render a finished run's report without refitting."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from dvbstats.input.folders import LeftoverWarning, OutputFolderError
from dvbstats.report import ENGINES, RenderError, RunFolderError, render


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="python -m dvbstats.report",
        description=(
            "Render the report of a finished dvbstats run: writes OUT_ROOT/<run name>/report.qmd (Quarto "
            "source you can edit and re-render), its figures, and a single self-contained report.html "
            "(figures embedded, opens without a network). Reads only the run folder; nothing is refitted."
        ),
        epilog=(
            "Engines: 'quarto' runs `quarto render` (needs the quarto CLI on PATH); 'pandoc' uses the Pandoc "
            "of the pypandoc-binary wheel with a Lua filter for Quarto callouts and cross-references; 'auto' "
            "(default) picks quarto when it is installed, else pandoc. Prints the path of report.html. Exit codes: "
            "0 written; 2 the run folder or its manifest is malformed (the message names the file), or the report "
            "folder cannot be used; 1 the engine failed; 130 interrupted (Ctrl-C: nothing written, an earlier "
            "report there is unchanged)."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", type=Path,
                   help="run folder written by python -m dvbstats.fit (has manifest.json, dvgr.csv, ...)")
    p.add_argument("--out-root", metavar="DIR", type=Path, default=Path("reports"),
                   help="where reports go; the report is written to DIR/<run name>/ (default: reports)")
    p.add_argument("--engine", choices=ENGINES, default="auto", help="render engine (default: auto)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    args = parser().parse_args(argv)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LeftoverWarning)
            html = render(args.run_dir, args.out_root, engine=args.engine)
    except KeyboardInterrupt:
        print("\ninterrupted: no report or partial report folder was written; an earlier report there is unchanged",
              file=sys.stderr)
        return 130
    except (RunFolderError, OutputFolderError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RenderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for line in dict.fromkeys(f"{'note' if issubclass(w.category, LeftoverWarning) else 'warning'}: {w.message}"
                              for w in caught):
        print(line, file=sys.stderr)
    print(html)
    return 0


if __name__ == "__main__":
    sys.exit(main())
