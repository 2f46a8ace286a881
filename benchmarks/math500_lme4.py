"""Cross-check the MATH-500 condition model against lme4's glmer (an analysis, not a test: R is never needed at run time).

The real LART MATH-500 matrix (tests/data/real/wide/math500_lart.csv) read by dvbstats' wide reader, written as a
long table, fitted by ``glmer(outcome ~ 1 + condition + (1 + condition | model) + (1 | item), binomial)`` (Laplace),
and set beside a dvbstats run folder of the same formula: the zero-shot effect, the item SD, the per-model SDs of
the intercept and of the zero-shot effect and their correlation. lme4 codes condition 0/1 (its model intercept is
the one-shot rate's); dvbstats centres the column at its trial-weighted mean, which leaves the condition
effect, its SD and the item SD comparable and moves the model-intercept SD by the slope's share
(``sd_model_intercept_at_one_shot`` below: dvbstats' SDs and correlation carried to lme4's coding, from the
posterior means, so approximate).

    .venv/bin/python benchmarks/math500_lme4.py RUN_DIR   # a run folder of python -m dvbstats.fit on the matrix
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing the package

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from dvbstats import api  # noqa: E402

MATRIX = ROOT / "tests" / "data" / "real" / "wide" / "math500_lart.csv"
PATTERN = "(?P<model>.+)_(?P<condition>zero_shot|one_shot)"
GLMER = """
suppressMessages(library(lme4))
d <- read.csv(commandArgs(TRUE)[1])
d$condition <- factor(d$condition, levels = c("one_shot", "zero_shot"))
t <- system.time(m <- glmer(outcome ~ 1 + condition + (1 + condition | model) + (1 | item), data = d,
                           family = binomial, control = glmerControl(optimizer = "bobyqa")))
vc <- as.data.frame(VarCorr(m))
cat(sprintf('{"intercept": %.6f, "zero_shot": %.6f, "sd_item": %.6f, "sd_model_intercept": %.6f, ',
            fixef(m)[1], fixef(m)[2], vc$sdcor[vc$grp == "item"],
            vc$sdcor[vc$grp == "model" & vc$var1 == "(Intercept)" & is.na(vc$var2)]))
cat(sprintf('"sd_model_zero_shot": %.6f, "cor_model": %.6f, "seconds": %.1f, "converged": %s}\n',
            vc$sdcor[vc$grp == "model" & vc$var1 == "conditionzero_shot" & is.na(vc$var2)],
            vc$sdcor[vc$grp == "model" & !is.na(vc$var2)], t[["elapsed"]],
            ifelse(is.null(m@optinfo$conv$lme4$messages), "true", "false")))
"""


def glmer(long: Path) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as f:
        f.write(GLMER)
    out = subprocess.run(["Rscript", f.name, str(long)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def dvbstats_estimates(run: Path, share: float) -> dict:
    """The run's posterior means; ``share``: the zero-shot share of the trials (the centring of the column)."""
    sd = pl.read_csv(run / "sd.csv").select("term", "mean")
    sd = dict(sd.iter_rows())
    fixed = dict(pl.read_csv(run / "fixed.csv").select("coefficient", "mean").iter_rows())
    cor = pl.read_csv(run / "cor.csv")["mean"][0]
    s0, s1, c = sd["model|Intercept"], sd["model|condition[zero_shot]"], share
    # the model intercept at one-shot: the centred column is -c there
    at_one_shot = np.sqrt(s0**2 + (c * s1) ** 2 - 2 * c * cor * s0 * s1)
    return {"zero_shot": fixed["condition[zero_shot]"], "sd_item": sd["item"], "sd_model_intercept": s0,
            "sd_model_intercept_at_one_shot": float(at_one_shot), "sd_model_zero_shot": s1, "cor_model": cor}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a dvbstats run folder of the MATH-500 matrix")
    args = parser.parse_args()
    data = api.load(MATRIX, benchmark="binary", wide="model", label_pattern=PATTERN)
    trials = data.trials.data.filter(pl.col("status") == "used").select("model", "item", "condition", "outcome")
    with tempfile.TemporaryDirectory() as tmp:
        long = Path(tmp) / "math500_long.csv"
        trials.write_csv(long)
        t0 = time.perf_counter()
        lme4 = glmer(long)
        wall = time.perf_counter() - t0
    ours = dvbstats_estimates(args.run, float((trials["condition"] == "zero_shot").mean()))
    print(f"lme4 glmer (Laplace, bobyqa) on {trials.height:,} judgments: {wall:.0f} s wall, converged {lme4['converged']}")
    print(f"{'estimate':<34}{'dvbstats (posterior mean)':>26}{'lme4':>10}")
    for key in ("zero_shot", "sd_item", "sd_model_intercept", "sd_model_zero_shot", "cor_model"):
        print(f"{key:<34}{ours[key]:>26.3f}{lme4[key]:>10.3f}")
    print(f"{'sd_model_intercept_at_one_shot':<34}{ours['sd_model_intercept_at_one_shot']:>26.3f}"
          f"{lme4['sd_model_intercept']:>10.3f}")


if __name__ == "__main__":
    main()
