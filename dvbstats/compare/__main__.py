"""``python -m dvbstats.compare``: the command line is :mod:`dvbstats.cli.compare`."""

import sys

from dvbstats.cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
