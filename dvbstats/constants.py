"""Defaults defined once: interval mass, seed, the chance line."""

#: Mass of every highest-density interval unless the user asks otherwise (ArviZ's default).
HDI_PROB = 0.94
#: Seed of sampling and of posterior predictions unless the user gives one.
SEED = 20251
#: The rate of a model that ignores the deep value (DVB's reference line).
CHANCE = 0.5
