"""``python -m dvbstats.report``: the command line is :mod:`dvbstats.cli.report`."""

import sys

from dvbstats.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
