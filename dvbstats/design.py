"""``python -m dvbstats.design``: plan the next run (the command line is :mod:`dvbstats.cli.design`, the
statistics :mod:`dvbstats.planning`; from Python, ``dvb.design(...)``)."""

import sys

from dvbstats.cli.design import main

if __name__ == "__main__":
    sys.exit(main())
