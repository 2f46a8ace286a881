"""``python -m dvbstats.design``: plan the next run (``__main__`` runs :mod:`dvbstats.cli.design`; the
statistics are :mod:`dvbstats.planning`; from Python, ``dvb.design(...)``)."""
