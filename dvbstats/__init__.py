"""dvbstats: hierarchical Bayesian statistics for LLM value-alignment benchmarks.

    import dvbstats as dvb
    fit = dvb.Model("chose_deep ~ 1 + (1|model) + (1|value)", dvb.load("dumps/")).fit(seed=1)
    fit.summary(); fit.rates("model"); fit.save("runs/x"); dvb.report("runs/x")

Pipeline: ``dvbstats.input.ingest`` (dumps → TrialTable) → ``dvbstats.input.cells`` (CellTable) →
``dvbstats.results.fitted.fit`` (Fit) → ``dvbstats.results.tables``/``dvbstats.results.scaling`` (tables) →
``dvbstats.report`` (Quarto/HTML). The CLI is ``python -m dvbstats.fit``.
"""

import warnings

__version__ = "0.1.0"

# Third-party notices that say nothing about a user's fit: ArviZ announcing its 1.0 refactor, and
# PyTensor's C backend lacking BLAS (models here are sampled through nutpie's Numba backend).
warnings.filterwarnings("ignore", message="ArviZ is undergoing a major refactor", category=FutureWarning)
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation", category=UserWarning)

# The report subpackage is imported before the function ``report`` is bound: importing a subpackage
# sets the parent's attribute of that name, so a later first import (by ``dvb.report()`` itself, or
# by the plots) would replace the function ``dvb.report`` with the module.
from dvbstats import report as _report_package  # noqa: E402, F401
from dvbstats.api import Data, Model, load, report  # noqa: E402  (after the warning filters)
from dvbstats.results.compare import compare  # noqa: E402
from dvbstats.results.fitted import Fit  # noqa: E402

__all__ = ["Data", "Fit", "Model", "compare", "load", "report"]
