"""``python -m dvbstats.fit``: the command line is :mod:`dvbstats.cli.fit`."""

import gc
import sys

from dvbstats.cli.fit import main

if __name__ == "__main__":
    # The objects of the imports live until the process ends: frozen, they are left out of every garbage
    # collection, the interpreter's last ones at exit included (at published scale the exit took
    # 1.1-1.3 s of collections, 0.15 s frozen; benchmarks/bench_speed.py)
    gc.freeze()
    sys.exit(main())
