"""Reliability tables and diagrams on grouped binomial counts.

Binning the groups gives the same table as binning the expanded 0/1 rows, because a group's rows
share one prediction. Grouped data also allows what raw rows cannot: one point per group
(``strategy="groups"``), each with its own Wilson interval.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from scipy.stats import norm

from binomlab._checks import check_bool, check_fraction, is_bool
from binomlab._colors import checked_colors
from binomlab._proba import check_bins, counts, named_model, resolve_proba, uniform_bins
from binomlab.errors import BinomlabError, InvalidCountsError
from binomlab.grouped import require_grouped

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from binomlab.grouped import Grouped, GroupedSource

__all__ = ["calibration", "plot_calibration", "wilson_interval"]

STRATEGIES = ("quantile", "uniform", "groups")
PLOT_STRATEGIES = (*STRATEGIES, "corp")
"""What :func:`plot_calibration` draws: :func:`calibration`'s strategies and the CORP diagram."""
_STAT_COLUMNS = (
    "p_min",
    "p_max",
    "mean_predicted",
    "observed",
    "trials",
    "successes",
    "lower",
    "upper",
    "dispersion",
)


def wilson_interval(
    successes: Any, trials: Any, *, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score confidence interval for a binomial proportion.

    Parameters
    ----------
    successes, trials : array-like of int
        Counts, broadcast against each other; ``trials > 0`` and ``0 <= successes <= trials``.
    level : float, default 0.95
        Two-sided confidence level, in (0, 1).

    Returns
    -------
    lower, upper : numpy.ndarray
        float64, of the broadcast shape of the inputs (0-d for scalars), within [0, 1];
        ``lower`` is exactly 0 where ``successes == 0`` and ``upper`` exactly 1 where
        ``successes == trials``.

    Raises
    ------
    InvalidCountsError
        If a trial count is not positive or a success count is outside [0, trials].
    BinomlabError
        If `level` is not a number in (0, 1) (Python or NumPy).
    """
    level = check_fraction(level, name="level")
    k, n = np.broadcast_arrays(
        np.asarray(successes, dtype=np.float64), np.asarray(trials, dtype=np.float64)
    )
    if np.any(~(n > 0)):
        msg = f"Wilson intervals need trials > 0; found {int(np.sum(~(n > 0)))} that are not."
        raise InvalidCountsError(msg)
    if np.any(~((k >= 0) & (k <= n))):
        msg = "Wilson intervals need 0 <= successes <= trials; some successes are outside."
        raise InvalidCountsError(msg)
    z = norm.ppf(0.5 + level / 2.0)
    z2 = z * z
    center = (k + z2 / 2.0) / (n + z2)
    half = z / (n + z2) * np.sqrt(k * (n - k) / n + z2 / 4.0)
    lower = np.where(k == 0, 0.0, np.clip(center - half, 0.0, 1.0))
    upper = np.where(k == n, 1.0, np.clip(center + half, 0.0, 1.0))
    return lower, upper


def calibration(
    data: GroupedSource,
    proba_or_fitted: Any,
    bins: int = 10,
    *,
    strategy: str = "quantile",
    level: float = 0.95,
    overdispersed: bool | float = False,
    params: int | None = None,
) -> pl.DataFrame:
    """Reliability table: predicted against observed success rate, per bin of predictions.

    Parameters
    ----------
    data : Grouped or path
        The grouped counts: a :class:`~binomlab.Grouped`, or the path of a parquet file
        written by :meth:`~binomlab.Grouped.write_parquet` (read with
        :func:`binomlab.read_grouped`).
    proba_or_fitted : array-like of shape [groups] or fitted model
        Probabilities, or an object with ``predict_proba(data)``.
    bins : int, default 10
        Number of bins for the ``"quantile"`` and ``"uniform"`` strategies (ignored by
        ``"groups"``).
    strategy : {"quantile", "uniform", "groups"}, default "quantile"
        ``"uniform"``: group ``i`` is in bin ``min(floor(bins · p_i), bins - 1)``; the bin
        number is kept, so bin 7 of 10 is always [0.7, 0.8).
        ``"quantile"``: the edges are the trial-weighted quantiles of ``p`` at ``j / bins``,
        ``j = 1 .. bins-1`` (inverted-CDF definition, i.e. ``np.quantile(...,
        method="inverted_cdf")`` on the expanded rows), and ``p`` goes to bin
        ``searchsorted(edges, p, side="left")``, so equal predictions always share a bin;
        bins are renumbered 0, 1, ... after empty ones are dropped.
        ``"groups"``: one row per group (``bin`` is the group's index in ``data.frame``), with the
        group's feature columns after ``bin``.
    level : float, default 0.95
        Confidence level of the Wilson interval.
    overdispersed : bool or float, default False
        Widen the intervals for extra-binomial variation (a NumPy bool or number is taken
        too). ``True`` estimates the dispersion
        from these groups and predictions — the quasi-binomial ``φ = max(1, Pearson χ² /
        df_resid)``, with :func:`binomlab.evaluate`'s degrees of freedom (``groups − rank``
        on the model's training data, ``groups`` on other data) — and a number gives ``φ``
        directly; the Wilson interval is then
        computed on ``k/φ`` successes out of ``n/φ`` trials (the effective sample size), so
        it is about ``√φ`` times wider. The ``dispersion`` column holds the ``φ`` used.
    params : int, optional
        Fitted parameters, for the dispersion estimate: ``df_resid = groups − params``
        (default: :func:`binomlab.evaluate`'s rule).

    Returns
    -------
    polars.DataFrame
        One row per non-empty bin, sorted by ``bin``, with columns ``bin`` (Int64, 0-based),
        [the feature columns, for ``"groups"`` only], ``p_min`` and ``p_max`` (range of the
        predictions in the bin), ``mean_predicted`` (trial-weighted mean prediction),
        ``observed`` (successes / trials), ``trials``, ``successes`` (Int64), ``lower`` and
        ``upper`` (Wilson interval of ``observed``). ``trials`` sums to ``data.trials``.

    Raises
    ------
    NotGroupedError
        `data` is not grouped data (raw rows: the message says how to group them).
    BinomlabError
        If `strategy` is unknown, `bins` is not an integer >= 1, `level` is not in (0, 1),
        `overdispersed` is not a bool or a number >= 1, or (``"groups"``) a feature column
        is named like an output column.
    InvalidProbabilityError, EmptyDataError, TypeError
        As :func:`binomlab.evaluate`.
    """
    data = require_grouped(data)
    if strategy not in STRATEGIES:
        msg = f"Expected one of {STRATEGIES}. Received: strategy={strategy!r}"
        raise BinomlabError(msg)
    check_bins(bins)
    trials, successes = counts(data)
    proba = resolve_proba(data, proba_or_fitted)
    phi = _dispersion(data, proba_or_fitted, proba, overdispersed, params)

    if strategy == "uniform":
        bin_of = uniform_bins(proba, bins)
    elif strategy == "quantile":
        edges = _weighted_quantile_edges(proba, trials, bins)
        _, bin_of = np.unique(np.searchsorted(edges, proba, side="left"), return_inverse=True)
    else:
        bin_of = np.arange(len(proba), dtype=np.int64)
    table = _table(bin_of.astype(np.int64), proba, trials, successes, level=level, phi=phi)
    if strategy == "groups":
        features = data.frame.drop("n", "k")
        clash = [name for name in features.columns if name in ("bin", *_STAT_COLUMNS)]
        if clash:
            msg = (
                f"Feature column(s) {clash} clash with the calibration columns; rename them "
                "before using strategy='groups'."
            )
            raise BinomlabError(msg)
        table = pl.concat([table.select("bin"), features, table.drop("bin")], how="horizontal")
    return table


def plot_calibration(
    data: GroupedSource,
    models: Any,
    *,
    bins: int = 10,
    strategy: str = "quantile",
    level: float = 0.95,
    overdispersed: bool | float = False,
    band: str | None = "consistency",
    resamples: int = 1000,
    seed: int = 0,
    histogram: bool = True,
    limits: str = "data",
    tables: Mapping[str, pl.DataFrame] | None = None,
    ax: Axes | None = None,
    colors: Sequence[str] | None = None,
    legend: bool = True,
) -> Axes:
    """Draw a reliability diagram of one or more models.

    Parameters
    ----------
    data : Grouped or path
        The grouped counts, as :func:`calibration` takes them.
    models : array-like, fitted model, or dict of name -> array-like or fitted model
        What to draw; a single model is labelled ``"model"``.
    bins, strategy, level, overdispersed
        As :func:`calibration`, plus ``strategy="corp"``: the CORP diagram of
        :func:`binomlab.reliability` (the isotonic fit of the observed rate, no bins), drawn
        as a line through the distinct predictions. With ``strategy="groups"`` each group is
        a point whose area is proportional to its trials; ``overdispersed=True`` widens
        every model's intervals by its own estimated dispersion (bins and groups only).
    band : "consistency", "confidence" or None, default "consistency"
        For ``"corp"``: the band of :func:`binomlab.reliability` to shade around each
        model's diagram, at ``level``, from ``resamples`` replicates drawn with ``seed``.
    histogram : bool, default True
        Draw the trials by predicted probability under the diagram (on a second y axis at
        the right, scaled to the bottom fifth).
    limits : {"data", "unit"}, default "data"
        ``"data"``: both axes span the predictions and the observed rates drawn (with a small
        margin; intervals and bands may run beyond), so a model predicting within 0.05–0.5
        fills the plot; ``"unit"``: both are [0, 1].
    tables : dict of name -> polars.DataFrame, optional
        The tables already computed for these models with the same data and options —
        :func:`binomlab.reliability` for ``"corp"``, :func:`calibration` otherwise — drawn as
        they are instead of computed again (an app redrawing the same diagram); one per
        model, under the same names.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made when omitted.
    colors : sequence of str, optional
        One matplotlib colour per model (default: :func:`binomlab._colors.model_colors`, a
        distinct colour each), e.g. to keep a model's colour across a grid of diagrams.
    legend : bool, default True
        Draw the legend (a small multiple titled with its model's name may leave it out).

    Returns
    -------
    matplotlib.axes.Axes
        With the diagonal (label ``"perfectly calibrated"``), one series per model, each in
        its own colour (bins: x the mean prediction, y the observed rate, vertical error
        bars the Wilson interval; corp: the line and its band) and a legend.

    Raises
    ------
    BinomlabError
        If `models` is an empty dict, an unknown `strategy`, `band` or `limits`, `tables`
        without a table for every model, `colors` that are not one matplotlib colour per
        model, and as :func:`calibration` and :func:`binomlab.reliability`.
    """
    import matplotlib.pyplot as plt

    data = require_grouped(data)
    named = dict(models) if isinstance(models, Mapping) else {"model": models}
    if not named:
        msg = "Expected at least one model to plot. Received: models={}"
        raise BinomlabError(msg)
    if strategy not in PLOT_STRATEGIES:
        msg = f"Expected one of {PLOT_STRATEGIES}. Received: strategy={strategy!r}"
        raise BinomlabError(msg)
    if limits not in ("data", "unit"):
        msg = f"Expected limits to be 'data' or 'unit'. Received: limits={limits!r}"
        raise BinomlabError(msg)
    histogram = check_bool(histogram, name="histogram")
    trials, _ = counts(data)
    if strategy == "corp" and not (is_bool(overdispersed) and not overdispersed):
        msg = (
            "overdispersed widens the Wilson intervals of binned strategies; the CORP diagram "
            "has bands instead (band='consistency' or 'confidence'). Received: "
            f"strategy='corp', overdispersed={overdispersed!r}"
        )
        raise BinomlabError(msg)
    colors = checked_colors(colors, len(named))  # before anything is drawn
    probas = {}
    for name, model in named.items():
        with named_model(name):
            probas[str(name)] = resolve_proba(data, model)
    made = ax is None
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="0.45", label="perfectly calibrated")
    drawn: list[np.ndarray] = [p for p in probas.values()]
    if tables is not None and set(map(str, tables)) != set(probas):
        msg = (
            f"Expected tables to hold one table per model, named {sorted(probas)}. "
            f"Received tables for: {sorted(map(str, tables))}"
        )
        raise BinomlabError(msg)
    if tables is not None:
        given = {str(name): table for name, table in tables.items()}
        tables = {name: given[name] for name in probas}  # in the models' order and colours
    if strategy == "corp":
        if band is not None and band not in ("consistency", "confidence"):
            msg = (
                f"Expected band to be 'consistency', 'confidence' or None. Received: band={band!r}"
            )
            raise BinomlabError(msg)
        if tables is None:
            from binomlab.reliability import reliability

            tables = {
                str(name): reliability(
                    data, model, bands=band, level=level, resamples=resamples, seed=seed
                )
                for name, model in named.items()
            }
        drawn += _draw_corp(ax, tables, colors, band=band, level=level)
    else:
        if tables is None:
            tables = {
                str(name): calibration(
                    data, model, bins, strategy=strategy, level=level, overdispersed=overdispersed
                )
                for name, model in named.items()
            }
        drawn += _draw_bins(ax, dict(tables), colors, strategy)
    if limits == "unit":
        low, high = 0.0, 1.0
    else:
        values = np.concatenate([np.ravel(v) for v in drawn])
        low, high = float(values.min()), float(values.max())
        pad = max(0.05 * (high - low), 0.01)
        low, high = max(0.0, low - pad), min(1.0, high + pad)
    if histogram:
        _draw_histogram(ax, probas, trials, colors, (low, high))
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel("mean predicted probability" if strategy != "corp" else "predicted probability")
    ax.set_ylabel("observed rate" if strategy != "corp" else "observed rate (CORP, isotonic)")
    if check_bool(legend, name="legend"):
        ax.legend(loc="upper left", fontsize="small", framealpha=0.85)
    if made:
        ax.figure.tight_layout()
    return ax


def _draw_bins(
    ax: Axes, tables: dict[str, pl.DataFrame], colors: list[Any], strategy: str
) -> list[np.ndarray]:
    largest = max(int(table["trials"].max()) for table in tables.values())
    drawn = []
    for (name, table), color in zip(tables.items(), colors, strict=True):
        x = table["mean_predicted"].to_numpy()
        y = table["observed"].to_numpy()
        lower, upper = table["lower"].to_numpy(), table["upper"].to_numpy()
        yerr = np.clip(np.vstack([y - lower, upper - y]), 0.0, None)
        if strategy == "groups":
            area = 200.0 * table["trials"].to_numpy() / largest
            ax.scatter(x, y, s=np.maximum(area, 4.0), alpha=0.7, label=name, color=color)
            ax.errorbar(x, y, yerr=yerr, fmt="none", ecolor=color, alpha=0.5)
        else:
            ax.errorbar(x, y, yerr=yerr, fmt="o-", capsize=3, markersize=4, label=name, color=color)
        drawn.append(y)
    return drawn


def _draw_corp(
    ax: Axes,
    tables: Mapping[str, pl.DataFrame],
    colors: list[Any],
    *,
    band: str | None,
    level: float,
) -> list[np.ndarray]:
    drawn = []
    for i, ((name, table), color) in enumerate(zip(tables.items(), colors, strict=True)):
        x, y = table["predicted"].to_numpy(), table["recalibrated"].to_numpy()
        # a model with one distinct prediction (a constant) is a single point: marked
        marker = "o" if x.size == 1 else None
        ax.plot(x, y, color=color, linewidth=1.8, marker=marker, label=str(name), zorder=3)
        drawn.append(y)
        if band is not None:
            lower = table[f"{band}_lower"].to_numpy()
            upper = table[f"{band}_upper"].to_numpy()
            label = f"{level:.0%} {band} band" if i == 0 else None
            if x.size == 1:  # the band at one prediction: a bar from its lower to upper end
                ax.vlines(x, lower, upper, color=color, linewidth=6, alpha=0.3, label=label)
            else:
                ax.fill_between(x, lower, upper, color=color, alpha=0.15, linewidth=0,
                                label=label)  # fmt: skip
    return drawn


def _draw_histogram(
    ax: Axes,
    probas: dict[str, np.ndarray],
    trials: np.ndarray,
    colors: list[Any],
    limits: tuple[float, float],
) -> None:
    twin = ax.twinx()
    edges = np.linspace(limits[0], limits[1], 41)
    tallest = 0.0
    single = len(probas) == 1
    for proba, color in zip(probas.values(), colors, strict=True):
        heights, _, _ = twin.hist(
            proba,
            bins=edges,
            weights=trials,
            histtype="stepfilled" if single else "step",
            color=color,
            alpha=0.3 if single else 0.8,
        )
        tallest = max(tallest, float(np.max(heights)))
    from matplotlib.ticker import MaxNLocator

    twin.set_ylim(0.0, 5.0 * tallest if tallest > 0 else 1.0)
    ticks = MaxNLocator(nbins=3, integer=True).tick_values(0.0, tallest)
    twin.set_yticks([t for t in ticks if 0 <= t <= tallest])
    twin.set_ylabel("trials", loc="bottom")
    ax.set_zorder(twin.get_zorder() + 1)  # the diagram above the histogram
    ax.patch.set_visible(False)


def _weighted_quantile_edges(proba: np.ndarray, trials: np.ndarray, bins: int) -> np.ndarray:
    """Inverted-CDF quantiles of `proba` with each group repeated `trials` times, at j / bins."""
    order = np.argsort(proba, kind="stable")
    sorted_p = proba[order]
    cumulative = np.cumsum(trials[order])
    # numpy's "inverted_cdf": 0-based row ceil(N q - 1), at least 0, of the sorted expanded rows.
    q = np.arange(1, bins) / bins
    row = np.maximum(np.ceil(cumulative[-1] * q - 1.0), 0.0)
    # Row r of the expansion belongs to the first group whose cumulative count exceeds r.
    return sorted_p[np.searchsorted(cumulative, row, side="right")]


def _table(
    bin_of: np.ndarray,
    proba: np.ndarray,
    trials: np.ndarray,
    successes: np.ndarray,
    *,
    level: float,
    phi: float,
) -> pl.DataFrame:
    order = np.argsort(bin_of, kind="stable")
    bin_sorted = bin_of[order]
    starts = np.flatnonzero(np.r_[True, bin_sorted[1:] != bin_sorted[:-1]])
    p = proba[order]
    n = trials[order]
    k = successes[order]
    n_bin = np.add.reduceat(n, starts)
    k_bin = np.add.reduceat(k, starts)
    p_min = np.minimum.reduceat(p, starts)
    p_max = np.maximum.reduceat(p, starts)
    # Clipped so rounding never puts the mean outside the range (and a single p stays exact).
    mean = np.clip(np.add.reduceat(n * p, starts) / n_bin, p_min, p_max)
    lower, upper = wilson_interval(k_bin / phi, n_bin / phi, level=level)
    return pl.DataFrame(
        {
            "bin": pl.Series(bin_sorted[starts], dtype=pl.Int64),
            "p_min": p_min,
            "p_max": p_max,
            "mean_predicted": mean,
            "observed": k_bin / n_bin,
            "trials": pl.Series(n_bin, dtype=pl.Int64),
            "successes": pl.Series(k_bin, dtype=pl.Int64),
            "lower": lower,
            "upper": upper,
            "dispersion": np.full(n_bin.size, phi),
        }
    )


def _dispersion(
    data: Grouped, model: Any, proba: np.ndarray, overdispersed: bool | float, params: int | None
) -> float:
    """The φ that widens the intervals: 1, a given number, or the quasi-binomial estimate."""
    if is_bool(overdispersed) and not overdispersed:
        return 1.0
    if is_bool(overdispersed):
        from binomlab.metrics import evaluate

        source = model if callable(getattr(model, "predict_proba", None)) else proba
        metrics = evaluate(data, source, params=params)
        if not np.isfinite(metrics["dispersion"]):
            msg = (
                f"overdispersed=True estimates the dispersion, but it is not defined here: "
                f"{metrics['df_note']}. Pass overdispersed=<a number >= 1> or params=..."
            )
            raise BinomlabError(msg)
        return max(1.0, metrics["dispersion"])
    if (
        isinstance(overdispersed, numbers.Real)
        and np.isfinite(overdispersed)
        and overdispersed >= 1
    ):
        return float(overdispersed)
    msg = f"Expected overdispersed to be True, False or a number >= 1. Received: {overdispersed!r}"
    raise BinomlabError(msg)
