"""CORP reliability diagrams on grouped counts, with consistency and confidence bands.

The CORP diagram (Dimitriadis, Gneiting and Jordan, 2021) plots the observed rate, estimated
by trial-weighted isotonic regression of the outcomes on the predictions
(:mod:`binomlab.isotonic`), against the prediction: no bins to choose, and on groups it is
exact and costs one pass over the distinct predictions. Its bands come from resampling the
successes of every distinct prediction, with the trials held fixed:

* the **consistency band** draws ``k* ~ Binomial(n, p)`` — the counts a *calibrated* model
  would give — and shows where the diagram would lie by chance if the model were calibrated
  (R's ``reliabilitydiag``). A diagram outside it is evidence of miscalibration;
* the **confidence band** resamples the trials: ``Σn`` draws with replacement from the
  expanded rows (one multinomial over every group's successes and failures, as a bootstrap of
  the raw rows, so it does not depend on how the rows were grouped), and shows how far the
  estimated curve itself is uncertain. A prediction that no drawn trial holds takes the
  refitted curve's value between its neighbours (held flat beyond the ends), as the fit is
  read at new predictions.

Bands are simultaneous by default: the pointwise quantiles are widened until ``level`` of
the resampled diagrams lie inside at every prediction, so "the diagram leaves the 95%
consistency band" is a test at the 5% level; ``simultaneous=False`` gives the pointwise band.
Each band costs ``resamples`` random draws and isotonic fits over the distinct predictions
(the confidence band's draws are over every group's successes and failures): about
``0.5 µs × resamples × predictions`` for the consistency band and twice that for the
confidence band (10 s and 20 s for 1,000 resamples of 20,000).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from binomlab._checks import check_bool, check_fraction, check_int, check_seed
from binomlab._proba import counts, resolve_proba
from binomlab.errors import BinomlabError
from binomlab.grouped import require_grouped
from binomlab.isotonic import IsotonicFit, fit_isotonic, isotonic_values

if TYPE_CHECKING:
    from binomlab.grouped import GroupedSource

__all__ = ["BANDS", "corp_band", "reliability"]

BANDS = ("consistency", "confidence")
MAX_RESAMPLES = 100_000


def reliability(
    data: GroupedSource,
    proba_or_fitted: Any,
    *,
    bands: str | tuple[str, ...] | None = BANDS,
    level: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
    simultaneous: bool = True,
) -> pl.DataFrame:
    """The CORP reliability table: the recalibrated (isotonic) rate at every prediction.

    Parameters
    ----------
    data : Grouped or path
        The grouped counts, as :func:`binomlab.evaluate` takes them.
    proba_or_fitted : array-like of shape [groups] or fitted model
        Probabilities, or an object with ``predict_proba(data)``.
    bands : "consistency", "confidence", a tuple of them, or None
        The resampling bands to add (default both); each costs ``resamples`` isotonic fits
        and binomial draws over the distinct predictions.
    level : float, default 0.95
        The bands' level, in (0, 1).
    resamples : int, default 1000
        Replicates per band, in [100, 100,000].
    seed : int, default 0
        Seed of the replicates (the same seed gives the same bands).
    simultaneous : bool, default True
        Widen the bands until ``level`` of the replicated diagrams lie inside everywhere
        (False: pointwise quantiles at ``(1 ± level) / 2``).

    Returns
    -------
    polars.DataFrame
        One row per distinct prediction, increasing: ``predicted``, ``recalibrated`` (the
        isotonic fit of the observed rate, in [0, 1]; the CORP curve), ``trials`` and
        ``successes`` (Int64: the groups at that prediction; ``trials`` sums to
        ``data.trials``), ``observed`` (their raw rate), then ``consistency_lower``,
        ``consistency_upper``, ``confidence_lower``, ``confidence_upper`` for the bands
        asked for.

    Raises
    ------
    BinomlabError
        An unknown band, a bad `level`, `resamples`, `seed` or `simultaneous`.
    NotGroupedError, InvalidProbabilityError, EmptyDataError, TypeError
        As :func:`binomlab.evaluate`.
    """
    bands = _check_bands(bands)
    level = check_fraction(level, name="level")
    resamples = check_int(resamples, name="resamples", minimum=100, maximum=MAX_RESAMPLES)
    seed = check_seed(seed)
    simultaneous = check_bool(simultaneous, name="simultaneous")
    data = require_grouped(data)
    trials, successes = counts(data)
    proba = resolve_proba(data, proba_or_fitted)
    fit = fit_isotonic(proba, trials, successes)
    table = {
        "predicted": fit.x,
        "recalibrated": fit.y,
        "trials": pl.Series(fit.trials, dtype=pl.Int64),
        "successes": pl.Series(fit.successes, dtype=pl.Int64),
        "observed": fit.successes / fit.trials,
    }
    for band in bands:
        # a stream of its own per band: each is the same whether or not the other is asked for
        rng = np.random.default_rng([seed, BANDS.index(band)])
        lower, upper = corp_band(
            fit, trials, successes, band, level=level, resamples=resamples, rng=rng,
            simultaneous=simultaneous,
        )  # fmt: skip
        table[f"{band}_lower"], table[f"{band}_upper"] = lower, upper
    return pl.DataFrame(table)


def corp_band(
    fit: IsotonicFit,
    trials: np.ndarray,
    successes: np.ndarray,
    band: str,
    *,
    level: float,
    resamples: int,
    rng: np.random.Generator,
    simultaneous: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ends of a band at each of ``fit.x``, float64 ``[levels]`` each.

    ``trials`` and ``successes`` are the groups' (``int64 [groups]``), which the confidence
    band's bootstrap of the trials draws from.
    """
    curves = np.empty((resamples + (band == "consistency"), fit.x.size))
    cells = np.concatenate([successes, trials - successes])  # every group's outcomes
    level_of_cell = np.concatenate([fit.level_of, fit.level_of])
    groups = trials.size
    for r in range(resamples):
        if band == "consistency":
            curves[r] = isotonic_values(fit.trials, rng.binomial(fit.trials, fit.x))
            continue
        # a bootstrap of the trials: Σn draws with replacement from the expanded rows
        draws = rng.multinomial(int(cells.sum()), cells / cells.sum())
        n_star = np.bincount(level_of_cell, weights=draws, minlength=fit.x.size)
        k_star = np.bincount(fit.level_of, weights=draws[:groups], minlength=fit.x.size)
        drawn = n_star > 0
        # predictions no drawn trial holds: the fit between its neighbours, held at the ends
        values = isotonic_values(n_star[drawn], k_star[drawn])
        curves[r] = np.interp(fit.x, fit.x[drawn], values)
    if band == "consistency":
        # The data's own diagram is one more curve: under calibration it is exchangeable with
        # the replicates, which makes "it leaves the simultaneous band" an exact test.
        curves[-1] = fit.y
    return _envelope(curves, level, simultaneous)


def _envelope(curves: np.ndarray, level: float, simultaneous: bool) -> tuple[np.ndarray, ...]:
    """The band of ``curves [resamples, levels]``: pointwise quantiles at ``(1 ± level) / 2``,
    or a simultaneous band of standardised deviations.

    The simultaneous band is ``[m − q·s₋, m + q·s₊]`` at every point, with ``m`` the curves'
    mean there and ``s₋``, ``s₊`` the root mean squares of their deviations below and above
    it; ``q`` is the ``level`` quantile (the ``⌈level·B⌉``-th smallest of ``B``) of every
    curve's largest standardised deviation. So exactly the curves beyond that quantile leave
    it somewhere, and for exchangeable curves (the consistency band's replicates and the data's
    own diagram under calibration) the chance that a given one leaves it is at most
    ``1 − level``. Where the band passes 0 or 1 it ends there: a diagram lies in [0, 1].
    """
    if not simultaneous:
        tail = (1.0 - level) / 2.0
        return tuple(np.quantile(curves, [tail, 1.0 - tail], axis=0))
    center = curves.mean(axis=0)
    deviation = curves - center
    below = np.sqrt(np.mean(np.minimum(deviation, 0.0) ** 2, axis=0))
    above = np.sqrt(np.mean(np.maximum(deviation, 0.0) ** 2, axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(
            deviation < 0, -deviation / below, np.where(deviation > 0, deviation / above, 0.0)
        )
    largest = np.sort(scaled.max(axis=1))
    q = largest[int(np.ceil(level * largest.size)) - 1]
    return np.clip(center - q * below, 0.0, 1.0), np.clip(center + q * above, 0.0, 1.0)


def _check_bands(bands: Any) -> tuple[str, ...]:
    if bands is None:
        return ()
    chosen = (bands,) if isinstance(bands, str) else bands
    if not isinstance(chosen, tuple | list) or any(b not in BANDS for b in chosen):
        msg = f"Expected bands to be None or one or more of {BANDS}. Received: bands={bands!r}"
        raise BinomlabError(msg)
    return tuple(dict.fromkeys(chosen))
