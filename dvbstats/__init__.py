"""dvbstats: hierarchical Bayesian statistics for the Deep Value Benchmark (DVB).

Pipeline: ``ingest`` (dumps → TrialTable) → ``cells`` (CellTable) → ``fitting.fit`` (Fit) →
``summaries``/``scaling`` (tables) → ``report`` (Quarto/HTML). The CLI is ``python -m dvbstats.fit``.
"""

import warnings

__version__ = "0.1.0"

# Third-party notices that say nothing about a user's fit: ArviZ announcing its 1.0 refactor, and
# PyTensor's C backend lacking BLAS (models here are sampled through nutpie's Numba backend).
warnings.filterwarnings("ignore", message="ArviZ is undergoing a major refactor", category=FutureWarning)
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS installation", category=UserWarning)
