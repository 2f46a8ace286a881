"""``python -m dvbstats.fit``: the command line is :mod:`dvbstats.cli.fit`."""

import sys

from dvbstats.cli.fit import main

if __name__ == "__main__":
    sys.exit(main())
