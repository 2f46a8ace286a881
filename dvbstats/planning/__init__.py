"""Design and power analysis: how many items, repetitions and models a question needs.

``prior`` (the design prior: a pilot's posterior or stated effects), ``questions`` (estimands and their
success rules), ``closed_form`` (Miller 2024's paired, clustered, repeated power), ``assurance`` (simulated
runs and their analyses), ``sweep`` (design points and the recommendation), ``check`` (the approximation
against full fits), ``output`` (files and figure), ``study`` (all of it: ``dvb.design``).
"""
