"""``python -m dvbstats.design``: the command line is :mod:`dvbstats.cli.design`."""

import sys

from dvbstats.cli.design import main

if __name__ == "__main__":
    sys.exit(main())
