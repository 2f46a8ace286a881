"""The command lines: argparse and console output (``python -m dvbstats.fit``, ``.compare``, ``.report``)."""
