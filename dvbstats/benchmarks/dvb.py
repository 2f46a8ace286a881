"""The Deep Value Benchmark (Ashkinaze et al., NeurIPS 2025) as a :class:`Benchmark`: today's behaviour.

Its files are harness dumps or aggregated cell tables, read by :func:`dvbstats.input.ingest.load`; the
outcome is ``chose_deep`` and its rate the DVGR, set against chance (0.5); the default formula is
:data:`dvbstats.model.formula.DEFAULT_FORMULA`.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from dvbstats.benchmarks.definition import Benchmark
from dvbstats.constants import CHANCE
from dvbstats.input import ingest, schema
from dvbstats.input.registry import ModelTable
from dvbstats.model import lazy
from dvbstats.model.formula import DEFAULT_FORMULA

agreement = lazy.module("dvbstats.results.agreement")  # statsmodels and PyMC: imported when the analysis runs


def model_agreement(used: pl.LazyFrame, models: ModelTable, **options):
    """Agreement between models on the prompts both answered, and paired tests (only the columns it needs are read:
    a streamed trial file stays on disk)."""
    rows = used.select("model", "prompt_id", "chose_deep", "status").collect(engine="streaming")
    return agreement.agreement_analysis(rows, models, **options)

#: Design variables of a DVB trial table (``log_n_train`` is derived from ``n_train``).
DESIGN: tuple[str, ...] = (
    "model", "value", "value_less", "feature", "feature_less", "feature_dim", "context", "n_train", "log_n_train",
)

#: The paper's big/small codings of its nine models; every other model counts as small.
PAPER_CODINGS: dict[str, frozenset[str]] = {
    "gpt-4.1-mini small": frozenset({"gemini-2.0-flash", "gpt-4.1", "gpt-4o", "llama-3-70b"}),
    "gpt-4.1-mini big": frozenset(
        {"gemini-2.0-flash", "gpt-4.1", "gpt-4o", "llama-3-70b", "gpt-4.1-mini"}
    ),
}

DVB = Benchmark(
    name="dvb",
    title="Deep Value Benchmark",
    read=ingest.load,
    outcome="chose_deep",
    rate_name="DVGR",
    rate_long="Deep Value Generalization Rate",
    reference=CHANCE,
    reference_label="chance: a model indifferent between the deep value and the shallow feature",
    default_formula=DEFAULT_FORMULA,
    design=DESIGN,
    item="prompt_id",
    size_codings=PAPER_CODINGS,
    direction="higher",
    primary="the DVGR per model, averaged over the design cells of the data (values, features, contexts, "
            "training sizes), and over every model",
    aliases={"rates": "dvgr"},
    agreement=model_agreement,
    wording={
        "outcome_phrase": "chose the deep value",
        "headline": "posterior DVGR per model",
        "below_reference": "P(DVGR < 0.5)",
        "reference_short": "chance",
    },
)


def is_dvb_file(path: str | Path | ingest.InputFile) -> bool:
    """Whether a data file is a harness dump (every harness column) or a DVB cell table."""
    file = path if isinstance(path, ingest.InputFile) else ingest.InputFile(str(path), ingest._format(Path(path)))
    return set(schema.HARNESS_COLUMNS) <= set(ingest._columns(file)) or ingest.is_cell_table(file)
