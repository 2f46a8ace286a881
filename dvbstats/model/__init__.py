"""The model: formula, fixed-effect coding, priors, the design and its PyMC build, sampling and diagnostics."""
