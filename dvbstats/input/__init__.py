"""Input: harness dumps and cell tables, the model table, and the run folder (written and read by one module)."""
