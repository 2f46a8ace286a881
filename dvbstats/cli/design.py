"""``python -m dvbstats.design``: how many items, repetitions and models a question needs (closed-form power and
simulation-based Bayesian assurance), from a pilot run folder or stated effects.

The console half of :func:`dvbstats.planning.study.design`, which holds the analysis itself.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from dvbstats.benchmarks import BENCHMARKS
from dvbstats.constants import SEED
from dvbstats.planning.output import design_point
from dvbstats.planning.prior import DesignError
from dvbstats.planning.questions import CRITERIA
from dvbstats.planning.study import ASSURANCE, ITEMS, MODELS, SIMS, design

#: Seconds between progress lines when the output is not a terminal.
PROGRESS_EVERY = 10.0


def _numbers(flag: str):
    """An argparse type: comma-separated whole numbers, the flag named in the error."""
    def parse(text: str) -> list[int]:
        try:
            return [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}: comma-separated whole numbers, e.g. 250,500,1000; got {text!r}")
    return parse


def _rate(text: str) -> tuple[str, float]:
    arm, sep, value = text.rpartition("=")
    try:
        return (arm, float(value)) if sep and arm else _bad_rate(text)
    except ValueError:
        return _bad_rate(text)


def _bad_rate(text: str):
    raise argparse.ArgumentTypeError(f"--rate: ARM=RATE with a rate between 0 and 1 (ARM: a model, or "
                                     f"MODEL@CONDITION), e.g. gpt-4o=0.55; got {text!r}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dvbstats.design", description=(
        "Plan the next run: for each question, the closed-form power (paired, clustered, repeated: Miller "
        "2024) and the simulation-based Bayesian assurance (truth drawn from the design prior, a run "
        "simulated, analysed, scored) over numbers of items and repetitions (and models, for the scaling "
        "slope), and the smallest design that "
        "reaches --assurance. The design prior is a pilot run's posterior (--pilot) or stated effects "
        "(--rate, --item-sd). Writes design.csv, recommendation.json and design.png to --out."))
    src = p.add_argument_group("design prior")
    src.add_argument("--pilot", type=Path, help="a run folder (python -m dvbstats.fit); its posterior is the prior")
    src.add_argument("--rate", type=_rate, action="append", default=[], metavar="ARM=RATE",
                     help="stated rate of an arm (a model, or MODEL@CONDITION); repeat per arm")
    src.add_argument("--item-sd", type=float, help="with --rate: SD of the items' shared difficulty, logit scale")
    src.add_argument("--arm-item-sd", type=float, default=0.0,
                     help="with --rate: SD of an arm's own item effects (model x item), logit scale (default: 0)")
    src.add_argument("--benchmark", choices=sorted(BENCHMARKS),
                     help="with --rate: whose words the plan uses (its rate's name and direction; default: binary, "
                     "a neutral 'rate'); a pilot's own benchmark sets them")
    src.add_argument("--rate-name", help="with --rate and --benchmark binary: what the rate is called (e.g. accuracy)")
    q = p.add_argument_group("questions")
    q.add_argument("--contrast", action="append", default=[], metavar="A-B",
                   help="difference of two models, paired on the items (per condition when the pilot has them)")
    q.add_argument("--condition", action="append", default=[], metavar="C1-C0",
                   help="a condition effect (e.g. targeted-none), one question per model")
    q.add_argument("--precision", type=float, metavar="W", help="HDI half-width of each arm's rate below W")
    q.add_argument("--scaling", action="store_true",
                   help="the scaling slope's sign (the package's trend of the logit rate on within-family size) "
                   "over --models numbers of models")
    q.add_argument("--criterion", choices=CRITERIA, default="hdi",
                   help="contrast and slope success: hdi = the 94%% HDI excludes 0; direction = P(diff > 0) > 0.95 "
                   "(the slope: P(slope has the prior's sign) > 0.95) (default: hdi)")
    q.add_argument("--difference", type=float,
                   help="assume this true difference A - B (C1 - C0) for every --contrast and --condition "
                   "question (default: the prior's)")
    t = p.add_argument_group("scaling trend (with --scaling)")
    t.add_argument("--slope", type=float, help="true slope: change in the logit rate per within-family SD of size "
                   "rank (default: the pilot's posterior; needed with --rate)")
    t.add_argument("--model-sd", type=float, help="SD of the models around their family's line, logit scale "
                   "(default: the pilot's posterior; with --rate 0)")
    t.add_argument("--family-size", type=int, help="models per family in the planned run (default: the pilot's "
                   "median, else 3)")
    d = p.add_argument_group("design points")
    d.add_argument("--items", type=_numbers("--items"), default=list(ITEMS), help="numbers of items to sweep "
                   f"(default: {','.join(map(str, ITEMS))})")
    d.add_argument("--reps", type=_numbers("--reps"), default=[1], help="repetitions per item to sweep (default: 1)")
    d.add_argument("--models", type=_numbers("--models"), default=list(MODELS), help="with --scaling: numbers of "
                   f"models to sweep (default: {','.join(map(str, MODELS))})")
    d.add_argument("--assurance", type=float, default=ASSURANCE, help="target assurance (default: %(default)s)")
    d.add_argument("--sims", type=int, default=SIMS, help="simulated runs per design point (default: %(default)s)")
    d.add_argument("--check", type=int, default=0, metavar="N",
                   help="re-estimate each recommended design with N simulated runs fitted by the package (slow)")
    d.add_argument("--seed", type=int, default=SEED, help="default: %(default)s")
    p.add_argument("--out", type=Path, default=Path("design"), help="output folder (default: %(default)s)")
    p.add_argument("--section", action="store_true", help="also add the result to the --pilot run folder as a "
                   "report section (sections/design.md; python -m dvbstats.report RUN shows it)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


class _Progress:
    """A progress line: rewritten in place on a terminal, else one line at most every PROGRESS_EVERY s."""

    def __init__(self, stream=sys.stderr):
        self.stream, self.tty, self.last = stream, stream.isatty(), 0.0

    def __call__(self, done: int, total: int, text: str) -> None:
        now = time.monotonic()
        if self.tty:
            self.stream.write(f"\r\x1b[K[{done}/{total}] {text}")
            if done == total:
                self.stream.write("\n")
        elif done == total or now - self.last >= PROGRESS_EVERY:
            self.stream.write(f"[{done}/{total}] {text}\n")
            self.last = now
        self.stream.flush()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = design(args.pilot, rates=dict(args.rate) or None, item_sd=args.item_sd, arm_item_sd=args.arm_item_sd,
                        contrasts=args.contrast, conditions=args.condition, precision=args.precision,
                        scaling=args.scaling, criterion=args.criterion, difference=args.difference, slope=args.slope,
                        model_sd=args.model_sd, family_size=args.family_size, benchmark=args.benchmark,
                        rate_name=args.rate_name, items=args.items, reps=args.reps, models=args.models,
                        sims=args.sims, assurance=args.assurance, check=args.check, seed=args.seed, out=args.out,
                        section=args.section, progress=None if args.quiet else _Progress())
    except DesignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rec = result.recommendation
    print(f"Design prior: {rec['prior']} ({rec['prior_draws']} draws; item SD shared {rec['item_sd_shared']:.2f}, "
          f"own {rec['item_sd_own']:.2f}, logit scale, posterior means); the rate: {rec['rate_long']}"
          f"{'; ' + rec['direction'] if rec['direction'] else ''}; target assurance "
          f"{rec['assurance_target']:g}, {rec['sims']} simulated runs per design point.")
    for entry in rec["questions"]:
        print(f"\n{entry['question']}: {entry['rule']}")
        for method, name in (("simulation", "simulated assurance"), ("closed_form", "closed form")):
            best = entry[method]
            print(f"  {name:20s} " + (f"{design_point(best)}: {best['assurance']:.3f}"
                                      + (f" (MC SE {best['mc_se']:.3f})" if method == "simulation" else "")
                                      if best else entry[f"{method}_note"]))
        if "check_note" in entry:
            print(f"  {'full-fit check':20s} {entry['check_note']}")
        if "check" in entry:
            c = entry["check"]
            print(f"  {'full-fit check':20s} {c['items']} items x {c['reps']}: {c['full_fit_assurance']:.3f} "
                  f"(MC SE {c['full_fit_mc_se']:.3f}) over {c['runs']} fits; decisions agree in "
                  f"{c['decisions_agree']:.0%}")
    print(f"\nWrote {', '.join(str(p) for p in result.paths)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
