"""dvbstats: hierarchical Bayesian statistics for LLM value-alignment benchmarks.

    import dvbstats as dvb
    fit = dvb.Model("chose_deep ~ 1 + (1|model) + (1|value)", dvb.load("dumps/")).fit(seed=1)
    fit.summary(); fit.rates("model"); fit.save("runs/x", analyses=dvb.Analysis().run(fit)); dvb.report("runs/x")

Pipeline: ``dvbstats.input.ingest`` (dumps → TrialTable) → ``dvbstats.input.cells`` (CellTable) →
``dvbstats.results.fitted.fit`` (Fit) → ``dvbstats.results.tables``/``dvbstats.results.scaling`` (tables) →
``dvbstats.report`` (Quarto/HTML). The CLI is ``python -m dvbstats.fit``; planning the next run,
``dvb.design(...)`` / ``python -m dvbstats.design`` (``dvbstats.planning``).
"""

import gc
import warnings

__version__ = "0.1.0"

# The imports below create about 270,000 objects that live as long as the process: the garbage
# collector, left on, runs full collections over them while they pile up (0.2-0.4 s of the 2.6 s
# CPU of the import, measured with gc.disable() around it), so it is paused for their duration.
# Third-party notices that say nothing about a user's fit (ArviZ announcing its 1.0 refactor) are
# silenced while they run, in a scope: the user's warning filters are left as they were.
_collecting = gc.isenabled()
gc.disable()
try:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="ArviZ is undergoing a major refactor", category=FutureWarning)
        # The report subpackage is imported before the function ``report`` is bound: importing a subpackage
        # sets the parent's attribute of that name, so a later first import (by ``dvb.report()`` itself, or
        # by the plots) would replace the function ``dvb.report`` with the module.
        from dvbstats import report as _report_package  # noqa: F401
        from dvbstats.api import Data, Model, load, report
        from dvbstats import design as _design_package  # noqa: F401  (the subpackage first, as for report above)
        from dvbstats import compare as _compare_package  # noqa: F401  (the subpackage first, as for report above)
        from dvbstats.pipeline import Analysis
        from dvbstats.planning.study import design
        from dvbstats.results.compare import compare
        from dvbstats.results.fitted import Fit
finally:
    if _collecting:
        gc.enable()
    del _collecting

__all__ = ["Analysis", "Data", "Fit", "Model", "compare", "design", "load", "report"]
