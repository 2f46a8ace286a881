"""Sampling with nutpie and convergence diagnostics: the settings, a run of nutpie on a compiled model with its
progress lines, and Diagnostics, the one verdict of every sampled model. A PyMC model is sampled by
:func:`dvbstats.model.pymcmodel.sample`."""

from __future__ import annotations

import sys
import threading
import time
import warnings
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Literal

import arviz as az
import numpy as np
import nutpie
import polars as pl
import xarray as xr

from dvbstats.constants import CHAINS, DRAWS, MAX_R_HAT, MIN_ESS, SEED, TUNE

Sampler = Literal["nutpie", "pymc"]


@dataclass(frozen=True)
class SamplerSettings:
    sampler: Sampler = "nutpie"
    draws: int = DRAWS
    tune: int = TUNE
    chains: int = CHAINS
    seed: int = SEED
    target_accept: float | None = None  # None: the sampling plan's (model.plan)
    #: nutpie's low-rank modified mass matrix (diagonal plus the directions of largest and smallest
    #: variance); None: the sampling plan's (model.plan)
    low_rank: bool | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class SamplingInterrupted(KeyboardInterrupt):
    """The sampler stopped early (Ctrl-C): nutpie and PyMC catch the interrupt and return what they have."""


def complete(idata: az.InferenceData, settings: SamplerSettings) -> az.InferenceData:
    """``idata`` if every draw was made; raise :class:`SamplingInterrupted` on a short trace (PyMC)
    or a NaN-padded one (nutpie)."""
    post = idata.posterior
    if post.sizes["chain"] < settings.chains or post.sizes["draw"] < settings.draws:
        raise SamplingInterrupted("sampling was interrupted before every draw was made")
    for var in post.data_vars.values():
        if np.issubdtype(var.dtype, np.floating) and np.isnan(var.values).any():
            raise SamplingInterrupted("sampling was interrupted before every draw was made")
    return idata


#: Seconds between progress lines when the console is not a terminal (CI logs, nohup, notebooks).
PROGRESS_INTERVAL_S = 10.0


def run_nutpie(compiled, settings: SamplerSettings, progress: bool) -> az.InferenceData:
    """nutpie on a compiled model (PyMC's or a hand-written density): its progress bar on a terminal,
    elsewhere a progress line every PROGRESS_INTERVAL_S; an interrupted run raises
    :class:`SamplingInterrupted` instead of returning a NaN-padded trace."""
    lines = progress and not sys.stderr.isatty()
    sampler = nutpie.sample(
        compiled,
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        seed=settings.seed,
        target_accept=settings.target_accept,
        save_warmup=lines,  # so that progress lines can count tuning draws; dropped below
        low_rank_modified_mass_matrix=bool(settings.low_rank),
        progress_bar=progress and not lines,
        blocking=False,
    )
    total, start, done = settings.chains * (settings.draws + settings.tune), time.perf_counter(), 0
    try:
        while True:
            try:
                idata = sampler.wait(timeout=PROGRESS_INTERVAL_S if lines else None)
                break
            except TimeoutError:
                if done >= total:  # every draw is in: no more inspecting (it copies the whole trace)
                    _collecting(total, time.perf_counter() - start)
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # ArviZ: "more chains than draws" early on
                    done = _progress_line(sampler.inspect(), total, time.perf_counter() - start, final=False)
    except KeyboardInterrupt:  # as nutpie's blocking sample: the draws so far
        idata = sampler.abort()
    except Exception:
        sampler.cancel()  # now, not when the interpreter shuts down (nutpie panics then)
        raise
    if lines:
        _progress_line(idata, total, time.perf_counter() - start)
        idata = az.InferenceData(**{g: idata[g] for g in idata.groups() if not g.startswith("warmup_")})
    return complete(idata, settings)


def _progress_line(idata: az.InferenceData, total: int, elapsed: float, *, final: bool = True) -> int:
    """One progress line, and the draws so far: their count, or, once every draw is in (and before the last
    line), what is being done."""
    done = _draws_made(idata)
    if done >= total and not final:
        _collecting(total, elapsed)
        return done
    stats = idata.sample_stats if "sample_stats" in idata.groups() else {}
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    print(f"  sampling: {done:,}/{total:,} draws (tuning included), {divergences} divergences after tuning, "
          f"{elapsed:.0f} s", flush=True)
    return done


def _draws_made(idata: az.InferenceData) -> int:
    """The draws the chains have made, tuning included. nutpie pads every chain to the longest one with NaN
    (4 chains on 2 cores: the first two finish before the last two have started), so the finite step sizes
    are counted, not the padded shape."""
    return sum(int(np.isfinite(idata[g]["step_size"].values).sum()) for g in ("warmup_sample_stats", "sample_stats")
               if g in idata.groups())


def _collecting(total: int, elapsed: float) -> None:
    print(f"  sampling done; collecting the {total:,} draws from the chains, {elapsed:.0f} s", flush=True)


@contextmanager
def ticker(what: str | None):
    """Print ``what`` with the elapsed time every PROGRESS_INTERVAL_S until the block ends (None: silent)."""
    if what is None:
        yield
        return
    start, stop = time.perf_counter(), threading.Event()

    def tick() -> None:
        while not stop.wait(PROGRESS_INTERVAL_S):
            print(f"  {what}: {time.perf_counter() - start:.0f} s", flush=True)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        print(f"  {what}: done in {time.perf_counter() - start:.0f} s", flush=True)


@dataclass(frozen=True)
class Diagnostics:
    """R-hat and ESS of every reported quantity, divergences, and what fails the thresholds."""

    table: pl.DataFrame  # parameter, r_hat, ess_bulk, ess_tail
    divergences: int
    n_draws: int

    @property
    def failures(self) -> list[str]:
        t = self.table
        out = []
        bad = t.filter(pl.col("r_hat") > MAX_R_HAT)
        if bad.height:
            worst = bad.sort("r_hat", descending=True).row(0, named=True)
            out.append(f"R-hat > {MAX_R_HAT} for {bad.height} quantities (worst {worst['parameter']}: {worst['r_hat']:.3f})")
        low = t.filter(pl.min_horizontal("ess_bulk", "ess_tail") < MIN_ESS)
        if low.height:
            worst = low.sort("ess_bulk").row(0, named=True)
            out.append(f"ESS < {MIN_ESS} for {low.height} quantities (worst {worst['parameter']}: bulk {worst['ess_bulk']:.0f})")
        if self.divergences:
            out.append(f"{self.divergences} divergent transitions out of {self.n_draws} draws")
        return out

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> dict:
        t = self.table
        return {
            "ok": self.ok,
            "failures": self.failures,
            "max_r_hat": float(t["r_hat"].max()),
            "min_ess_bulk": float(t["ess_bulk"].min()),
            "min_ess_tail": float(t["ess_tail"].min()),
            "divergences": self.divergences,
            "thresholds": {"max_r_hat": MAX_R_HAT, "min_ess": MIN_ESS, "max_divergences": 0},
        }


def diagnose(quantities: Mapping[str, xr.DataArray], idata: az.InferenceData) -> Diagnostics:
    """Diagnostics for named (chain, draw, ...) arrays, one row per scalar quantity."""
    ds = xr.Dataset(dict(quantities))
    with arviz_without_numba():
        rhat, bulk, tail = az.rhat(ds), az.ess(ds, method="bulk"), az.ess(ds, method="tail")
    rows = []
    for name, da in quantities.items():
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        for label, idx in _labels(name, da, extra):
            rows.append((label, float(rhat[name].values[idx]), float(bulk[name].values[idx]), float(tail[name].values[idx])))
    table = pl.DataFrame(rows, schema=["parameter", "r_hat", "ess_bulk", "ess_tail"], orient="row")
    if "sample_stats" not in idata.groups():  # independent draws (an exact sampler): nothing can diverge
        return Diagnostics(table, 0, int(idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]))
    stats = idata.sample_stats
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    n_draws = int(stats.sizes["chain"] * stats.sizes["draw"])
    return Diagnostics(table, divergences, n_draws)


#: :func:`arviz_without_numba`'s state: the blocks inside it (in any thread) and the flag to restore after the last.
_WITHOUT_NUMBA = {"lock": threading.Lock(), "depth": 0, "flag": None}


@contextmanager
def arviz_without_numba():
    """ArviZ's NumPy arithmetic for R-hat, ESS and MCSE: its Numba variance kernel is not cached on disk, so
    it would compile on every run (0.2-0.7 CPU s, benchmarks/bench_compile.py) to save microseconds. ArviZ's
    switch is global: blocks in threads beside each other (the agreement's beside the scaling tests) count
    themselves in, and the last one out restores it, so none runs half with the other arithmetic."""
    state = _WITHOUT_NUMBA
    with state["lock"]:
        if state["depth"] == 0:
            state["flag"], az.Numba.numba_flag = az.Numba.numba_flag, False
        state["depth"] += 1
    try:
        yield
    finally:
        with state["lock"]:
            state["depth"] -= 1
            if state["depth"] == 0:
                az.Numba.numba_flag = state["flag"]


def _labels(name: str, da: xr.DataArray, dims: list[str]):
    if not dims:
        yield name, ()
        return
    for idx in np.ndindex(*(da.sizes[d] for d in dims)):
        coords = ",".join(str(da[d].values[i]) for d, i in zip(dims, idx))
        yield f"{name}[{coords}]", idx
