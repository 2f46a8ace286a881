"""``python -m dvbstats.compare``: compare finished runs by PSIS-LOO (``__main__`` runs :mod:`dvbstats.cli.compare`;
the comparison is :mod:`dvbstats.results.compare`; from Python, ``dvb.compare(...)``).

A package whose import runs no code, so that ``dvbstats/__init__`` imports it before binding the function
``dvbstats.compare``: a later ``import dvbstats.compare`` then finds it imported and leaves the function alone.
"""
