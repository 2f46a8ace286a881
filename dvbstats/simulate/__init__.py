"""Simulated benchmark data with known truth: DVB dumps (``dvb``), HVSB judgment trees (``hvsb``), the embedded examples (``example``)."""

from dvbstats.simulate.dvb import (
    FileFormat,
    FILE_FORMATS,
    EFFECT_TERMS,
    StudyDesign,
    Effects,
    Simulation,
    draw_effects,
    draw_prompts,
    linear_predictor,
    simulate,
    SharedPropensity,
    shared_propensity_trials,
    population_agreement_effect,
)

__all__ = ["FileFormat", "FILE_FORMATS", "EFFECT_TERMS", "StudyDesign", "Effects", "Simulation", "draw_effects", "draw_prompts", "linear_predictor", "simulate", "SharedPropensity", "shared_propensity_trials", "population_agreement_effect"]
