"""The 2025 DVB paper (Ashkinaze et al.): its published figures, their reconstruction, its claims set against a reanalysis, the value audit."""
