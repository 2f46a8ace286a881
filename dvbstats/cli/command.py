"""``dvbstats fit|report|compare ...``: the installed console command (``[project.scripts]``).

The same command lines as ``python -m dvbstats.fit``, ``.report`` and ``.compare``. An installed
command does not put the working folder first on Python's import path (``python -m`` does), so a
data folder there named like a module, such as ``tree/`` (ArviZ tries an optional ``import tree``),
cannot shadow it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from dvbstats.cli import compare, fit, report

#: Sub-command -> its command line's ``main(argv) -> exit status`` and what it does.
COMMANDS: dict[str, tuple[Callable[[Sequence[str]], int], str]] = {
    "fit": (fit.main, "fit a model to result files and write a run folder (dvbstats fit --help)"),
    "report": (report.main, "render the report of a run folder without refitting (dvbstats report --help)"),
    "compare": (compare.main, "compare finished runs by PSIS-LOO (dvbstats compare --help)"),
}

USAGE = "usage: dvbstats {fit,report,compare} [options]\n\n" + "\n".join(
    f"  {name:<9}{words}" for name, (_, words) in COMMANDS.items())


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dvbstats COMMAND ...``; return the exit status (2 for an unknown command, as argparse)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if not argv or argv[0] not in COMMANDS:
        given = f"unknown command {argv[0]!r}" if argv else "a command is needed"
        print(f"{USAGE}\n\ndvbstats: error: {given}", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]][0](argv[1:])
