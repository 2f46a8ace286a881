"""The Deep Value Benchmark (Ashkinaze et al., NeurIPS 2025) as a :class:`Benchmark`: today's behaviour.

Its files are harness dumps or aggregated cell tables, read by :func:`dvbstats.input.ingest.load`; the
outcome is ``chose_deep`` and its rate the DVGR, set against chance (0.5); the default formula is
:data:`dvbstats.model.formula.DEFAULT_FORMULA`.
"""

from __future__ import annotations

from pathlib import Path

from dvbstats.benchmarks.definition import Benchmark
from dvbstats.constants import CHANCE, CREDIBLE
from dvbstats.input import files, ingest, schema
from dvbstats.model.formula import DEFAULT_FORMULA

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

#: The estimands the DVB report names, in the paper's words.
ESTIMANDS: tuple[tuple[str, str], ...] = (
    ("DVGR", "P(chose_deep): the probability that a model follows the deep value when the test item pits it "
             "against the shallow feature it was trained alongside. 0.5 is chance. Higher is better."),
    ("Raw DVGR", "deep-value choices / used trials, with the Wilson score interval and the exact two-sided "
                 "binomial test of DVGR = 0.5."),
    ("Posterior DVGR", "a model's DVGR averaged over the design cells of the data (values, features, contexts, "
                       "training sizes), computed per posterior draw; reported as mean and HDI."),
    ("Population DVGR", "(pop_rate in rates.csv, pop_dvgr in dvgr.csv) a model's DVGR on a new draw of every "
                        "non-model factor (new values, features, contexts) from the fitted population: wider than "
                        "the posterior DVGR because it includes item-to-item variation."),
    ("P(DVGR < 0.5)", f"the share of posterior draws in which the DVGR is below chance; above {CREDIBLE} counts as "
                      "credibly below chance."),
    ("Random-effect SD", "the standard deviation between levels of a grouping factor on the log-odds scale: "
                         "how much that factor moves choices."),
)

#: The DVB report's sections (names of ``dvbstats.report.sections.SECTIONS``), in order.
REPORT: tuple[str, ...] = (
    "reading_headline", "models", "forest", "values", "variance", "training_size", "scaling", "contrasts",
    "conditions", "prior_predictive", "ppc", "diagnostics", "quality", "condition_quality", "agreement",
)

def is_dvb_file(path: str | Path | files.InputFile) -> bool:
    """Whether a data file is a harness dump (every harness column) or a DVB cell table."""
    file = path if isinstance(path, files.InputFile) else files.InputFile(str(path), files.file_format(Path(path)))
    return set(schema.HARNESS_COLUMNS) <= set(files.columns(file)) or ingest.is_cell_table(file)


DVB = Benchmark(
    name="dvb",
    title="Deep Value Benchmark",
    example=("the embedded SYNTHETIC example (9 models x 12,000 prompts, simulated with effects calibrated to the "
             "published DVB aggregates)"),
    read=ingest.load,
    judgments=False,
    simulated="dvb example",  # dvbstats.simulate.example, registered by dvbstats.benchmarks.inputs
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
    agreement="dvb model agreement",  # dvbstats.results.agreement.dvb_agreement
    wording={
        "outcome_phrase": "chose the deep value",
        "headline": "posterior DVGR per model",
        "below_reference": "P(DVGR < 0.5)",
        "reference_short": "chance",
        "reference_caption": "chance",
        "quantity": "dvgr",  # the fit's name for its per-model rates (dvgr[model]), kept in DVB's diagnostics
        "rate_axis": "DVGR = P(model follows the deep value)",
        "model_note": (
            "*Used*: parsed trials in the likelihood; *Excluded*: rows not in it (unparseable or "
            "conflicting answers; superseded duplicate rows are counted apart in @tbl-quality). "
            "*Raw DVGR*: share of used trials that chose the deep value, with its "
            "Wilson interval and the exact two-sided binomial test of DVGR = 0.5. *Posterior DVGR*: the "
            "model's design-averaged DVGR on the values, features and contexts tested, posterior mean and {hdi}. "
            "*Population DVGR*: the same for a new draw of every design factor other than the model from the "
            "fitted population (what to expect on items not tested): wider, because it includes "
            "item-to-item variation."),
    },
    report=REPORT,
    recognises=is_dvb_file,
    input_files="a DVB harness dump or cell table",
    estimands=ESTIMANDS,
)
