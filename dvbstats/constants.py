"""Defaults defined once: interval mass, seed, the chance line, the credibility threshold, the sampler's
defaults and the limits its checks apply."""

#: Mass of every highest-density interval unless the user asks otherwise (ArviZ's default).
HDI_PROB = 0.94
#: Level of the frequentist confidence intervals (the papers' 95%).
CONFIDENCE_LEVEL = 0.95
#: Seed of sampling and of posterior predictions unless the user gives one.
SEED = 20251
#: The rate of a model that ignores the deep value (DVB's reference line).
CHANCE = 0.5
#: Posterior probability above which the wording and the verdicts call a direction credible
#: (P(DVGR < 0.5) > CREDIBLE: credibly below chance; < 1 - CREDIBLE: credibly above).
CREDIBLE = 0.95

#: A factor with more levels than this is item-level (``(1|prompt)``: 12,000 levels): its levels are not
#: listed level by level (``results.bounds.MAX_LEVELS_LISTED``) and its draws are kept in single precision
#: (``model.fastlogp.CellModel.expand``).
ITEM_LEVELS = 1000

#: Sampler defaults: posterior draws and tuning draws per chain, and chains.
DRAWS = 1000
TUNE = 500
CHAINS = 4

#: Limits a fit's sampler checks must pass before its numbers are reported without a warning
#: (R-hat at most MAX_R_HAT, bulk and tail ESS at least MIN_ESS, no divergent transition).
MAX_R_HAT = 1.01
MIN_ESS = 400
#: The exit status of a command whose sampler checks failed (its outputs are written and flagged).
EXIT_DIAGNOSTICS = 3
