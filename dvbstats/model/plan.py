"""The sampling plan: how a design is sampled, and what is tried next when a fit fails its checks.

Every rule that decides how a fit is sampled is here, each with the measurement behind it
(docs/model.md, docs/hvsb-format.md): the form of each random term (centred or non-centred, zero-sum
or textbook, a signed scale for an item term) from the trials its levels hold, a benchmark's measured
form where the data are as deep as it was measured on, the NUTS target acceptance, nutpie's mass matrix,
and the ordered fallbacks. :func:`plan` is a pure function of the design and the preferences (the
requested form, the benchmark's measured form, a target acceptance or mass matrix the user fixed);
:func:`dvbstats.results.fitted.fit` executes the plan and keeps what it ran (:class:`Sampling`), which the
run folder's manifest records and the report's methods show.

**Fallbacks.** Divergent transitions say the step size is too large for the posterior's curvature: the
first remedy keeps the form and raises the target acceptance (0.8 -> 0.95 -> 0.99, :data:`TARGET_ACCEPTS`; from
0.65 in high dimensions, :data:`HIGH_DIMENSION`),
which shortens the steps without changing the geometry that the form was chosen for. A fit without
divergences that misses R-hat or ESS narrowly (:func:`marginal`) is sampled again in the same form, at the
same target acceptance, with twice the draws: its chains mix, only not for long enough. Only a fit that
still fails, or that fails grossly (a geometry the form cannot mix in: the MATH-500 matrix's non-centred
intercepts, R-hat 1.17, bulk ESS 18), is sampled in another form (:func:`other_form`). Measured on 8
models x 2 conditions x 11 values (``(1 + condition|model) + (1|value)``, issue 19; ``benchmarks/bench_plan.py``,
``benchmarks/out/plan.csv``): the first form had 1-2 divergences at 0.95 in 3 of 3 seeds and passed at 0.99
in 2; the other form failed in 3 of 3 (R-hat up to 1.0125, bulk ESS down to 370). A form, target acceptance
or number of draws the user chose is never changed.

**A pilot where the rule guesses.** ``auto`` samples the slope columns of a random-slope term non-centred
because a slope SD near zero is a funnel the centred form cannot sample (the DVB example's
``(1 + log_n_train|model)``: 189 divergences centred). Where the slopes do vary and the data pin them down, the
centred form is the better one by far: on the 8-model design above every check passed centred at 0.8 in 3 of 3
seeds (bulk ESS 5,848-6,174, 7 leapfrog steps per draw against 19-34 for the rule's form). Which case a data set is
cannot be read from its depth, so when the rule would sample rich data with only the slope columns non-centred,
:func:`plan` names both forms as :attr:`SamplingPlan.candidates`; ``fit`` samples each briefly (:data:`PILOT`) and
:func:`choose` keeps the one with the fewest divergences, then the fewest leapfrog steps per draw, which
:func:`plan` then starts from (``source`` ``pilot``, the pilot's figures kept in the plan). Short pilots rarely
diverge where the full fit will, so the pilot's SDs decide first: a form that centres an SD whose pilot draws reach
below the standard error a level's own trials give (:func:`funnels`) is not chosen, and when both candidates centre
one, every term is sampled non-centred. On the calibration suite's slope class (6 models x 6 values x 3 sizes, 30
trials per cell, parameters from the prior) 31 of 200 fits failed their checks, 28 with divergences: the form the
pilot kept for its fewer steps centred an SD at the small end of its range (``sd_value`` 0.022 beside a level
standard error of 0.13: 58 divergences at 0.8, at the SD's 2nd percentile), and climbing the
target acceptance did not help; chosen by the SDs, 30 of those 31 seeds pass, and 20 of 20 seeds that passed
before, at 0.41 and 0.55 times the CPU (docs/model.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

import numpy as np

from dvbstats.constants import MIN_ESS

if TYPE_CHECKING:
    from dvbstats.model.design import Design, SlopeTerm, Term

Parametrization = Literal["auto", "zerosum", "zerosum_noncentered", "zerosum_slopes_noncentered", "centered",
                          "noncentered"]
PARAMETRIZATIONS: tuple[str, ...] = ("auto", "zerosum", "zerosum_noncentered", "zerosum_slopes_noncentered", "centered",
                                     "noncentered")
#: The textbook form of each zero-sum form, for a term whose mean no fixed coefficient absorbs.
TEXTBOOK = {"zerosum": "centered", "zerosum_noncentered": "noncentered", "zerosum_slopes_noncentered": "slopes_noncentered",
            "zerosum_signed": "noncentered"}

#: ``auto`` centres every zero-sum term when even the thinnest term holds at least this many trials
#: per level (median): then the likelihood pins each level down far more tightly than its prior SD.
#: Measured across data depths in docs/model.md (benchmarks/bench_depth.py).
CENTRED_MIN_TRIALS = 500
#: A random intercept this thin (median trials per level: benchmark items, ``(1|prompt)`` with ~9
#: trials per prompt) is item-level: ``auto`` samples it non-centred with a signed scale
#: (``zerosum_signed``) on its own when every other random intercept reaches CENTRED_MIN_TRIALS, so
#: that the rich terms stay centred. The tenfold gap keeps this mix away from the medium depths where
#: mixed forms failed (docs/model.md).
ITEM_MAX_TRIALS = 50
#: A random-slope term with fewer levels than this, sampled with non-centred slope columns, gets target
#: acceptance 0.99: HVSB's ``(1 + condition|model)`` on 4 models (3 SDs and 3 correlations from 4 levels)
#: passed its checks in 2 of 3 trees of 400 items at 0.95 and 3 of 3 at 0.99 (docs/hvsb-format.md); from
#: 6 models on 0.95 passed.
FEW_SLOPE_LEVELS = 6
#: A benchmark's measured form for a formula (``Benchmark.forms``) is sampled first only when every random
#: intercept holds at least this many trials per level (median); thinner data go by ``auto``'s rule. HVSB's
#: all-centred form with item effects (measured on the example, 34 judgments per item) failed its checks on
#: 6 of 6 simulated trees of 4 models (11-12 judgments per item: divergences in the slope SDs) and passed on
#: trees of 6 models (17 per item); docs/hvsb-format.md, ``benchmarks/bench_hvsb_items.py --tree``.
MEASURED_FORM_MIN_TRIALS = 15
#: The target acceptances a fit climbs, in order, while it has divergent transitions (see the module docstring).
TARGET_ACCEPTS = (0.8, 0.95, 0.99)
#: A posterior of at least this many parameters is sampled at target acceptance HIGH_DIMENSION_ACCEPT where the
#: rules would take 0.8. From about a thousand dimensions NUTS's trajectories are as long as the dimension makes
#: them (``benchmarks/bench_steps_floor.py``: 15 leapfrog steps per draw at 1,350 and 2,130 dimensions whatever the
#: target), and the acceptance rate that makes Hamiltonian Monte Carlo most efficient as the dimension grows is
#: 0.651 (Beskos, Pillai, Roberts, Sanz-Serna and Stuart 2013, Bernoulli 19(5A)). Measured in docs/model.md: the
#: HVSB example (2,095 parameters) tuned in 16.5 leapfrog steps per iteration against 22.6 and kept twice the
#: bulk ESS (1,297-1,504 against 563-791 over 3 seeds); DVB with ``(1|prompt)`` (12,051) draws in 18.4 steps
#: against 31. Where ``fit`` integrates the items out, the parameters left are sampled at 0.8 as before
#: (:func:`integrated_target_accept`). The calibration suite's classes are all below it.
HIGH_DIMENSION = 1000
HIGH_DIMENSION_ACCEPT = 0.65
#: A failure is narrow (:func:`marginal`) when, without divergences, every R-hat is at most this and every ESS at
#: least MIN_ESS / LONGER_DRAWS: chains that long again would be expected to pass (ESS grows with the draws).
MARGINAL_R_HAT = 1.05
#: How many times the draws a narrow failure is sampled again with.
LONGER_DRAWS = 2
#: The pilot run of each candidate form (:func:`candidates`): chains, tuning and draws per chain.
PILOT = {"chains": 2, "tune": 200, "draws": 100}
#: The quantile of each SD's pilot draws that :func:`funnels` compares with the SD's level standard error.
FUNNEL_QUANTILE = 0.1


def check_parametrization(parametrization: str) -> Parametrization:
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {', '.join(PARAMETRIZATIONS)}, not {parametrization!r}")
    return parametrization


def trials_per_level(t: Term | SlopeTerm, n_trials: np.ndarray) -> np.ndarray:
    """Trials of each level of ``t`` that has any."""
    per_level = np.bincount(t.flat_index(), weights=n_trials)
    return per_level[per_level > 0]


def term_parametrizations(d: Design, parametrization: Parametrization) -> dict[str, str]:
    """The parametrisation of every random term.

    ``auto`` gives every random intercept one form: centred zero-sum when the thinnest term's median
    trials per level reach CENTRED_MIN_TRIALS, non-centred zero-sum otherwise. Mixing the forms
    (centred where a term is well filled, non-centred where it is thin) failed its checks at
    650-1,300 trials per level where either form alone passed (docs/model.md). The one exception is
    an item-level term (under ITEM_MAX_TRIALS per level) beside terms that all reach
    CENTRED_MIN_TRIALS: it alone is non-centred (non-centring the rich terms too mixed badly:
    bulk ESS below 60 for ``sd[model]`` on the HVSB example with item effects, docs/model.md), with a
    signed scale (``zerosum_signed``: ``r = v z``, ``sd = |v|``) unless interaction margins are moved
    into its prior scale: thousands of items tie the SD to one direction of ``z``, a ridge that is
    curved in ``log sd`` and straight in ``v``, and that reaches ``v = 0`` when the items do not
    differ (docs/model.md, benchmarks/bench_items.py). The slope columns of
    a random-slope term are always non-centred: a slope SD near zero (a slope that barely varies)
    makes a funnel that the centred form cannot sample (189 divergences, R-hat 1.11 at published
    scale, bench_slopes.py). Its intercept column follows the random intercepts' rule, judged on
    its own grouping's trials too (``zerosum_slopes_noncentered``: centred intercepts, non-centred
    slopes): non-centred intercepts pinned down by 12,000 trials per model mixed badly (bulk ESS
    177 for their SD, docs/model.md). A term whose mean no fixed coefficient absorbs takes the
    textbook form (:data:`TEXTBOOK`).
    """
    slopes = {s.name for s in d.slopes}
    if parametrization == "zerosum_slopes_noncentered":  # random intercepts centred, slope columns not
        out = {t.name: parametrization if t.name in slopes else "zerosum" for t in d.random}
    elif parametrization != "auto":
        out = {t.name: parametrization for t in d.random}
    else:
        n = d.cells.data["n_trials"].to_numpy()
        depth = {t.name: np.median(trials_per_level(t, n)) for t in d.terms}
        items = {k for k, m in depth.items() if m < ITEM_MAX_TRIALS}
        rest = [m for k, m in depth.items() if k not in items]
        if not (items and rest and min(rest) >= CENTRED_MIN_TRIALS):
            items = set()
        thinnest = min(rest if items else depth.values(), default=np.inf)
        form = "zerosum" if thinnest >= CENTRED_MIN_TRIALS or _rich_slopes(d, n, depth) else "zerosum_noncentered"
        out = {t.name: ("zerosum_noncentered" if d.absorbed.get(t.name) else "zerosum_signed") if t.name in items
               else form for t in d.terms}
        out |= {s.name: _slope_form(s, n, form) for s in d.slopes}
    allowed = _zero_sum_allowed(d)
    return {k: v if allowed[k] else TEXTBOOK.get(v, v) for k, v in out.items()}


def _rich_slopes(d: Design, n_trials: np.ndarray, depth: dict[str, float]) -> bool:
    """Whether ``auto`` centres random intercepts thinner than CENTRED_MIN_TRIALS because a random-slope term's
    grouping reaches it (its intercept column is then centred too, its slope columns never): every random
    intercept above ITEM_MAX_TRIALS per level (none item-level). Non-centring the slope term's intercepts pinned
    down by 1,000 trials per model mixed badly on the real MATH-500 matrix (69 models x 2 conditions x 500 items,
    138 trials per item, ``(1 + condition|model) + (1|item)``: R-hat 1.17 and bulk ESS 18 for
    ``sd[model|Intercept]``, bulk ESS 339 for ``sd[item]``); centred, every check passed (one seed: max R-hat
    1.006, min bulk ESS 697, 9,585 for ``sd[model|Intercept]``; estimates as lme4's, benchmarks/math500_lme4.py)."""
    return (bool(depth) and min(depth.values()) >= ITEM_MAX_TRIALS
            and any(np.median(trials_per_level(s, n_trials)) >= CENTRED_MIN_TRIALS for s in d.slopes))


def _slope_form(s: SlopeTerm, n_trials: np.ndarray, form: str) -> str:
    """``auto``'s form of a random-slope term, given the random intercepts' ``form``."""
    rich = form == "zerosum" and np.median(trials_per_level(s, n_trials)) >= CENTRED_MIN_TRIALS
    return "zerosum_slopes_noncentered" if rich and s.term.intercept else "zerosum_noncentered"


def centred_columns(s: SlopeTerm, parametrization: str) -> int:
    """How many leading columns of a slope term's rows are sampled centred (the rest non-centred)."""
    if parametrization in ("zerosum", "centered"):
        return len(s.coefficients)
    return int(s.term.intercept) if parametrization.endswith("slopes_noncentered") else 0


def _zero_sum_allowed(d: Design) -> dict[str, bool]:
    """A term may be zero-sum only where a fixed coefficient absorbs its mean (the intercept, the fixed slope)."""
    out = {t.name: d.formula.intercept for t in d.terms}
    for s in d.slopes:
        out[s.name] = all((c == "Intercept" and d.formula.intercept) or c in d.coefficients for c in s.coefficients)
    return out


def dimension(d: Design) -> int:
    """How many parameters the full density of ``d`` has: the intercept, the fixed coefficients, every level of
    every random term (per coefficient for a slope term), the SDs and the correlations."""
    return (int(d.formula.intercept) + len(d.fixed) + sum(int(np.prod([len(lv) for lv in t.levels])) for t in d.terms)
            + sum(len(s.levels) * len(s.coefficients) for s in d.slopes) + len(d.sd_labels) + len(d.pair_labels))


def default_target_accept(d: Design, parametrization: Parametrization) -> float:
    """0.8 when every random term is centred (data-rich: long trajectories would only cost time) or an
    item term with a signed scale beside centred ones (the ridge of its SD is straight and the low-rank
    mass matrix follows it: 20 leapfrog steps per draw against 31 at 0.95, every check passing, with and
    without item variation), HIGH_DIMENSION_ACCEPT instead when the posterior has at least HIGH_DIMENSION
    parameters (:func:`dimension`); 0.95 when some term is non-centred with a log SD (thin data, where
    divergences come from curvature and the gradients are cheap); 0.99 when a slope term of fewer than
    FEW_SLOPE_LEVELS levels has non-centred slope columns (its SDs and correlations barely pinned down:
    smaller steps: 63 leapfrog steps per draw against 31 at 0.95). Measured in docs/model.md and docs/hvsb-format.md."""
    kinds = term_parametrizations(d, parametrization)
    if any(len(s.levels) < FEW_SLOPE_LEVELS and "noncentered" in kinds[s.name] for s in d.slopes):
        return 0.99
    if any("noncentered" in k for k in kinds.values()):
        return 0.95
    return HIGH_DIMENSION_ACCEPT if dimension(d) >= HIGH_DIMENSION else 0.8


def integrated_target_accept(accept: float | None) -> float | None:
    """The target acceptance of an attempt planned at ``accept`` when ``fit`` samples it with the item term
    integrated out: HIGH_DIMENSION_ACCEPT was chosen for the full density's dimension, which that path does not
    sample, so it keeps 0.8 (1,000 models x 10,000 items, 1,003 parameters left: at 0.65 the first attempt missed
    its checks narrowly and was sampled again with twice the draws, 445.9 s against 238.7 s at 0.8, docs/model.md)."""
    return 0.8 if accept == HIGH_DIMENSION_ACCEPT else accept


def default_low_rank(d: Design, parametrization: Parametrization) -> bool:
    """nutpie's low-rank mass matrix when an item term has a signed scale: the ridge that ties its SD
    to one direction of the item deviations is straight there, and a diagonal mass matrix cannot
    follow it (bulk ESS of sd[prompt] 367 against 2,816 with it, docs/model.md)."""
    return any(k == "zerosum_signed" for k in term_parametrizations(d, parametrization).values())


def first_form(d: Design, parametrization: Parametrization, measured: str | None) -> Parametrization:
    """The form sampled first: ``parametrization``, except that ``auto`` takes the benchmark's measured form
    ``measured`` (if any) on data at least MEASURED_FORM_MIN_TRIALS deep, where it was measured to pass its checks."""
    if parametrization != "auto" or not measured:
        return parametrization
    n = d.cells.data["n_trials"].to_numpy()
    depth = [np.median(trials_per_level(t, n)) for t in d.random]
    return check_parametrization(measured) if min(depth, default=np.inf) >= MEASURED_FORM_MIN_TRIALS else "auto"


def other_form(d: Design, parametrization: Parametrization) -> str | None:
    """The zero-sum form to sample a design in when ``parametrization`` failed its checks, or None. With random
    slopes it is the non-centred form unless that one failed: centred slope columns cannot sample a slope SD near
    zero (189 divergences at published scale, docs/model.md), so a failed non-centred slope fit stands; so does a
    fit with an item term (the other form would centre it). A failed all-centred fit with slopes (a benchmark's
    measured form) keeps its random intercepts centred and non-centres only the slope columns: on 8-model HVSB
    trees where it diverged in the slope SDs, that passed 3 of 3 times and the all-non-centred form, mixing badly
    in the intercepts, 0 of 2 (docs/hvsb-format.md). A failed fit with a signed item term beside a slope term of
    fewer than FEW_SLOPE_LEVELS levels is retried with its items centred and only the slope columns non-centred:
    on 4-model HVSB trees of 2,000 items, at 0.99, the first form passed 1 of 3 and that one 2 of 3, the seed
    where the first failed included (docs/hvsb-format.md). A design without random intercepts has none."""
    if not d.terms:
        return None
    chosen = set(term_parametrizations(d, parametrization).values())
    if "zerosum_signed" in chosen:  # an item term: centred, thousands of items cannot sample their SD near 0
        few = any(len(s.levels) < FEW_SLOPE_LEVELS for s in d.slopes)
        return "zerosum_slopes_noncentered" if few else None  # (ESS 3), but few slope levels fail first
    if chosen == {"zerosum"}:
        return "zerosum_slopes_noncentered" if d.slopes else "zerosum_noncentered"
    if d.slopes:
        return None if chosen == {"zerosum_noncentered"} else "zerosum_noncentered"
    return "zerosum"


def marginal(failed: Mapping) -> bool:
    """Whether a failed fit's checks (``Diagnostics.summary()``) missed narrowly: no divergence, R-hat at most
    MARGINAL_R_HAT, bulk and tail ESS at least MIN_ESS / LONGER_DRAWS."""
    return (not failed["divergences"] and failed["max_r_hat"] <= MARGINAL_R_HAT
            and min(failed["min_ess_bulk"], failed["min_ess_tail"]) >= MIN_ESS / LONGER_DRAWS)


def candidates(d: Design, parametrization: Parametrization) -> tuple[str, ...]:
    """The forms a pilot chooses between, or none: where ``parametrization`` samples every random intercept and
    intercept column centred and only slope columns non-centred (rich data, the rule's guess that the slopes may
    barely vary), that form and the all-centred one."""
    forms = set(term_parametrizations(d, parametrization).values())
    guessed = "zerosum_slopes_noncentered" in forms and forms <= {"zerosum", "zerosum_slopes_noncentered"}
    return (parametrization, "zerosum") if guessed else ()


def level_se(d: Design) -> dict[str, float]:
    """Per random SD (``sd_<name>``, by name): the median over its grouping's levels of the standard error that a
    level's own trials give its coefficient, ``1 / sqrt(sum n p (1 - p) z^2)`` over the level's cells (``z``: the
    column the coefficient multiplies, 1 for an intercept; ``p``: the cell's observed rate, half a trial added each
    way). An SD well above it is pinned down level by level, where the centred form samples well; an SD that may
    lie below it leaves the levels to the prior, the funnel the centred form cannot sample."""
    data = d.cells.data
    n, k = data["n_trials"].to_numpy().astype(float), data["n_deep"].to_numpy().astype(float)
    p = (k + 0.5) / (n + 1.0)
    weight = n * p * (1.0 - p)
    columns = [(t.name, t.flat_index(), np.ones(len(n))) for t in d.terms]
    columns += [(name, s.index, s.Z[:, j]) for s in d.slopes for j, name in enumerate(s.sd_names)]
    out = {}
    for name, index, z in columns:
        information = np.bincount(index, weights=weight * z**2)
        out[name] = float(np.median(1.0 / np.sqrt(information[information > 0])))
    return out


def funnels(d: Design, pilots: Mapping[str, Mapping]) -> set[str]:
    """The random SDs that some pilot (its ``sd_low``: each SD's FUNNEL_QUANTILE quantile) puts below
    :func:`level_se`: a centred form would sample them in a funnel."""
    se = level_se(d)
    return {name for name, bound in se.items()
            if any(p.get("sd_low", {}).get(name, np.inf) < bound for p in pilots.values())}


def centred_sds(d: Design, parametrization: str) -> set[str]:
    """The random SDs whose levels ``parametrization`` samples centred (the deviations themselves)."""
    forms = term_parametrizations(d, check_parametrization(parametrization))
    out = {t.name for t in d.terms if forms[t.name] in ("zerosum", "centered")}
    return out.union(*(s.sd_names[:centred_columns(s, forms[s.name])] for s in d.slopes))


def choose(d: Design, pilots: Mapping[str, Mapping]) -> str:
    """The form to start from, given the pilot runs (``{form: {"divergences": n, "steps_per_draw": x, "sd_low":
    {sd: quantile}}}``): of the piloted forms that centre no SD the pilots put in a funnel (:func:`funnels`), the
    one with the fewest divergences, then the fewest leapfrog steps per draw (the cheaper geometry; ties: the
    first named); if every piloted form centres such an SD, every term non-centred (``zerosum_noncentered``).
    Short pilots rarely diverge where the full fit will (0 divergences in 200 draws of both forms on calibration
    data whose all-centred fit then had 58-129 at 0.8, docs/model.md); the SDs they reach are what tells."""
    weak = funnels(d, pilots)
    safe = [form for form in pilots if not weak & centred_sds(d, form)]
    if not safe:
        return "zerosum_noncentered"
    return min(safe, key=lambda form: (pilots[form]["divergences"], pilots[form]["steps_per_draw"]))


#: When a fallback is tried: after a failed attempt with divergent transitions, after a narrow failure
#: (:func:`marginal`), or after any failed attempt.
When = Literal["first", "divergences", "marginal", "failed"]


@dataclass(frozen=True)
class Attempt:
    """One way of sampling the design: the form (a :data:`PARAMETRIZATIONS` name, expanded per term by
    :func:`term_parametrizations`), the target acceptance (None: the failed attempt's before it), nutpie's
    low-rank mass matrix or the diagonal one, how many times the requested draws, when it is tried and why."""

    parametrization: str
    target_accept: float | None
    low_rank: bool
    when: When = "first"
    why: str = ""
    draws_factor: int = 1


@dataclass(frozen=True)
class SamplingPlan:
    """The attempts a fit makes, in order: the first, then the fallbacks, each tried only while the previous one
    fails its checks and only if its ``when`` fits that failure. ``requested``: the form asked for (``auto`` or a
    form); ``source``: where the first form comes from (``rule``, ``benchmark``: a measured form, ``pilot``: the
    form :func:`choose` kept, ``user``; ``manifest``: rebuilt from a run folder written before plans were
    recorded); ``terms``: the first attempt's form per random term. ``candidates``: forms to pilot before the
    plan is final (:func:`candidates`; ``fit`` runs them and plans again with their figures); ``pilots``: those
    figures per form, once run."""

    requested: str
    source: str
    terms: Mapping[str, str]
    attempts: tuple[Attempt, ...]
    candidates: tuple[str, ...] = ()
    pilots: Mapping[str, Mapping] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "terms", MappingProxyType(dict(self.terms)))
        object.__setattr__(self, "pilots", MappingProxyType({k: dict(v) for k, v in self.pilots.items()}))

    @property
    def first(self) -> Attempt:
        return self.attempts[0]

    def next(self, after: int, failed: Mapping) -> int | None:
        """The index of the attempt to make after attempt ``after`` failed its checks (``failed``:
        ``Diagnostics.summary()``), or None (the failed fit stands)."""
        fits = {"failed": True, "divergences": bool(failed["divergences"]), "marginal": marginal(failed)}
        return next((k for k in range(after + 1, len(self.attempts)) if fits.get(self.attempts[k].when)), None)

    def as_dict(self) -> dict:
        return {"requested": self.requested, "source": self.source, "terms": dict(self.terms),
                "attempts": [asdict(a) for a in self.attempts], "candidates": list(self.candidates),
                "pilots": {k: dict(v) for k, v in self.pilots.items()}}

    @classmethod
    def from_dict(cls, record: Mapping) -> SamplingPlan:
        return cls(record["requested"], record["source"], record["terms"],
                   tuple(Attempt(**a) for a in record["attempts"]), tuple(record.get("candidates", ())),
                   record.get("pilots", {}))


def plan(d: Design, parametrization: Parametrization = "auto", *, measured_form: str | None = None,
         target_accept: float | None = None, low_rank: bool | None = None, fixed_draws: bool = False,
         pilots: Mapping[str, Mapping] | None = None) -> SamplingPlan:
    """How ``d`` is sampled: the first attempt and the ordered fallbacks (see the module docstring).

    ``parametrization``: ``auto`` (the rules) or a form the user chose (sampled as asked, no fallback);
    ``measured_form``: the benchmark's measured form for the formula (``Benchmark.forms``), sampled first on data
    deep enough (:func:`first_form`); ``target_accept``, ``low_rank``: the user's, kept in every attempt
    (None: the rules'; a target acceptance the user fixed is never raised); ``fixed_draws``: whether the user
    chose the number of draws (then no attempt samples longer); ``pilots``: the pilot runs' figures of the
    plan's :attr:`~SamplingPlan.candidates` (the plan then starts from the form :func:`choose` keeps)."""
    requested = check_parametrization(parametrization)
    first = first_form(d, requested, measured_form)
    source = "user" if requested != "auto" else "rule" if first == "auto" else "benchmark"
    if source == "rule" and pilots:
        first, source = choose(d, pilots), "pilot"

    def attempt(form: str, when: When, why: str, accept: float | None = None, factor: int = 1) -> Attempt:
        accept = accept or target_accept or (None if factor > 1 else default_target_accept(d, form))
        return Attempt(form, accept, default_low_rank(d, form) if low_rank is None else low_rank, when, why, factor)

    attempts = [attempt(first, "first", {"user": "the form asked for", "rule": "the rule for the data's depth",
                                         "benchmark": "the benchmark's measured form for the formula",
                                         "pilot": "the form a short pilot run preferred"}[source])]
    if requested == "auto":
        if target_accept is None:
            attempts += [attempt(first, "divergences", "divergent transitions: the same form at a higher target "
                                                       "acceptance", accept)
                         for accept in TARGET_ACCEPTS if accept > attempts[0].target_accept]
        if not fixed_draws:
            attempts.append(attempt(first, "marginal", f"a narrow failure without divergences: {LONGER_DRAWS} times "
                                                       "the draws", factor=LONGER_DRAWS))
        other = other_form(d, first)
        if other is not None:
            attempts.append(attempt(other, "failed", "the checks still fail: another form"))
    pending = candidates(d, first) if source == "rule" and not pilots else ()
    return SamplingPlan(requested, source, term_parametrizations(d, first), tuple(attempts), pending, pilots or {})


@dataclass(frozen=True)
class Sampling:
    """What a fit ran: its plan and, per attempt made (in order; the last is the fit's), a record with the
    form, per-term forms, target acceptance, mass matrix, backend, checks (``Diagnostics.summary()``), leapfrog
    steps per draw and sampling seconds."""

    plan: SamplingPlan
    attempts: tuple[Mapping, ...] = field(default_factory=tuple)

    @property
    def backend(self) -> str | None:
        """The density the kept attempt sampled: ``fastlogp`` (hand-written) or ``pymc``."""
        return self.attempts[-1].get("backend") if self.attempts else None

    @property
    def note(self) -> str | None:
        """Why the fit was sampled again, in words (None when the first attempt was kept)."""
        if len(self.attempts) < 2:
            return None
        steps = [f"{a['parametrization']} at target acceptance {_accept(a['target_accept'])} failed its checks "
                 f"({'; '.join(a['diagnostics']['failures'])})" for a in self.attempts[:-1]]
        last, first = self.attempts[-1], self.attempts[0]
        longer = f", {last['draws']} draws per chain" if last.get("draws") != first.get("draws") else ""
        return (f"{self.plan.requested} sampling plan: {'; then '.join(steps)}; refitted with --parametrization "
                f"{last['parametrization']} at target acceptance {_accept(last['target_accept'])}{longer}")

    def as_dict(self) -> dict:
        return {"plan": self.plan.as_dict(), "attempts": [dict(a) for a in self.attempts]}

    @classmethod
    def from_manifest(cls, meta: Mapping) -> Sampling:
        """The record of a run folder's manifest; one written before plans were recorded gives a plan of the one
        attempt it kept (source ``manifest``), with its form, sampler settings, backend and checks."""
        if "sampling" in meta:
            record = meta["sampling"]
            return cls(SamplingPlan.from_dict(record["plan"]), tuple(record["attempts"]))
        form = meta["parametrization"]
        sampled, sampler = form.get("sampled", form["requested"]), meta["sampler"]
        kept = Attempt(sampled, sampler.get("target_accept"), bool(sampler.get("low_rank")), "first",
                       "recorded by a dvbstats that kept no plan")
        tried = {"parametrization": sampled, "terms": form.get("terms", {}), "target_accept": kept.target_accept,
                 "low_rank": kept.low_rank, "backend": meta.get("backend"), "diagnostics": meta["diagnostics"]}
        return cls(SamplingPlan(form["requested"], "manifest", form.get("terms", {}), (kept,)), (tried,))


def describe(sampling: Mapping) -> list[tuple[str, str]]:
    """(setting, value) rows for the report's methods: the plan and the attempts made, from a manifest's
    ``sampling`` record (text only: the report escapes it)."""
    p = sampling["plan"]
    rows = [("sampling plan", f"{p['requested']} ({p['source']}): " + "; then ".join(
        f"{a['parametrization']} at {'the same' if a['target_accept'] is None else _accept(a['target_accept'])}"
        + (f" x{a['draws_factor']} draws" if a.get("draws_factor", 1) > 1 else "")
        + ("" if a["when"] == "first" else f" if {a['when']}") for a in p["attempts"]))]
    if p.get("pilots"):
        rows.append(("pilot runs", "; ".join(f"{form}: {r['divergences']} divergences, {r['steps_per_draw']:g} leapfrog "
                                             "steps per draw" for form, r in p["pilots"].items())))
    for k, a in enumerate(sampling["attempts"], start=1):
        d, draws = a["diagnostics"], f", {a['draws']} draws per chain" if a.get("draws") else ""
        rows.append((f"attempt {k}", f"{a['parametrization']} at target acceptance {_accept(a['target_accept'])}, "
                                     f"{'low-rank' if a['low_rank'] else 'diagonal'} mass matrix{draws}: "
                                     + ("checks passed" if d["ok"] else "; ".join(d["failures"]))))
    return rows


def _accept(target_accept: float | None) -> str:
    return "(not recorded)" if target_accept is None else f"{target_accept:g}"
