"""Results: the ``Fit`` object and what is computed from it (estimands, tables, contrasts, agreement, scaling, model comparison)."""
