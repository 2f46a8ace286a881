"""Defaults defined once: interval mass, seed, the chance line."""

#: Mass of every highest-density interval unless the user asks otherwise (ArviZ's default).
HDI_PROB = 0.94
#: Seed of sampling and of posterior predictions unless the user gives one.
SEED = 20251
#: The rate of a model that ignores the deep value (DVB's reference line).
CHANCE = 0.5
#: Most levels a design factor may have to get its own rows in margins.csv (design-averaged rates per
#: level): an item factor (HVSB's 2,000 scenarios, DVB's prompts) has thousands, one posterior summary each,
#: which says nothing a reader can use; its deviations stay in random_effects.csv.
MAX_MARGIN_LEVELS = 200
