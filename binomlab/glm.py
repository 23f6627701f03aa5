"""The binomial GLM's statistics on groups: design rank, in-sample fit, the coefficient table.

Everything here is computed from the training groups and equals what statsmodels'
``GLM(counts, X, family=Binomial())`` reports for the same counts:

* :func:`aliased_columns` / the rank: a column of the design ``[1, X]`` that is a linear
  combination of the intercept and the columns before it is *aliased* (R's rule): it is dropped,
  and the rank is the number of columns left;
* :class:`InSample`: log-likelihood with the binomial coefficients (statsmodels' ``llf`` for
  counts), deviance, Pearson χ², degrees of freedom ``groups − rank``, AIC ``−2 llf + 2 rank``
  and BIC ``−2 llf + rank·log(groups)`` (statsmodels' ``bic_llf``);
* :func:`coefficient_table`: estimates and standard errors from the Fisher information
  ``X̃ᵀ diag(n p (1 − p)) X̃`` on the groups (exact, not estimated from a sample of rows), on
  the features' own scale (a standardised numeric feature's coefficient per unit of the
  feature, the intercept at the raw zero);
* :class:`Summary`: the table with z, p-values and confidence intervals, dispersion-scaled on
  request (quasi-binomial), printed in statsmodels' layout; :func:`lrt` for nested models.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy.special import gammaln, xlogy
from scipy.stats import chi2 as chi2_distribution
from scipy.stats import norm

from binomlab._checks import check_fraction
from binomlab.backends.newton import Design, hessian
from binomlab.encoding import Encoder
from binomlab.errors import BinomlabError
from binomlab.grouped import Grouped
from binomlab.layout import IndexLayout
from binomlab.nll import sigmoid

__all__ = [
    "ALIAS_TOLERANCE",
    "InSample",
    "Summary",
    "aliased_columns",
    "coefficient_table",
    "in_sample",
    "lrt",
    "to_raw_scale",
]

ALIAS_TOLERANCE = 1e-9
"""A column whose part not explained by the columns before it has less than this fraction of
its own sum of squares is aliased."""

SUMMARY_SCHEMA = {
    "term": pl.String,
    "level": pl.String,
    "estimate": pl.Float64,
    "std_error": pl.Float64,
    "z": pl.Float64,
    "p_value": pl.Float64,
    "ci_lower": pl.Float64,
    "ci_upper": pl.Float64,
}


def aliased_columns(
    X: np.ndarray, names: Sequence[str], layout: IndexLayout | None = None
) -> list[str]:
    """Names of the columns of ``X`` that are, beside an intercept, linear combinations of
    the columns before them (what R reports as "not defined because of singularities").

    Parameters
    ----------
    X
        ``[groups, d]`` encoded design without the intercept, or its index form
        ``[groups, layout.n_inputs]``.
    names
        The ``d`` column names.
    layout
        The :class:`~binomlab.layout.IndexLayout` of an index-form ``X`` (``d =
        layout.width``); None for the one-hot matrix.
    """
    gram = hessian(X, np.ones(X.shape[0]), layout)
    d = gram.shape[0] - 1
    order = np.r_[d, np.arange(d)]  # the intercept first
    gram = gram[np.ix_(order, order)]
    diag = np.diag(gram).copy()
    scale = np.sqrt(np.where(diag > 0, diag, 1.0))
    corr = gram / np.outer(scale, scale)
    try:
        factor = np.linalg.cholesky(corr)
        if np.all(np.diag(factor) ** 2 > ALIAS_TOLERANCE) and np.all(diag > 0):
            return []
    except np.linalg.LinAlgError:
        pass
    from scipy.linalg import solve_triangular

    kept: list[int] = []
    lower = np.zeros((0, 0))
    dropped = []
    for j in range(d + 1):
        if diag[j] <= 0:
            dropped.append(j)
            continue
        r = solve_triangular(lower, corr[kept, j], lower=True) if kept else np.zeros(0)
        residual = 1.0 - float(r @ r)
        if residual <= ALIAS_TOLERANCE:
            dropped.append(j)
            continue
        grown = np.zeros((len(kept) + 1, len(kept) + 1))
        grown[:-1, :-1] = lower
        grown[-1, :-1] = r
        grown[-1, -1] = math.sqrt(residual)
        lower = grown
        kept.append(j)
    return [names[j - 1] for j in dropped if j > 0]


@dataclass(frozen=True)
class InSample:
    """The fit on the training groups.

    Attributes
    ----------
    fingerprint
        :attr:`Grouped.fingerprint` of the training groups.
    groups, trials
        Training groups and Σn.
    rank
        Rank of the design ``[1, X]`` (the logistic spec's parameters that are identified);
        None where degrees of freedom are not defined (an MLP).
    df_resid
        ``groups − rank``, or None with ``rank``.
    df_note
        Why ``rank`` is None (else None).
    log_likelihood
        ``Σ[log C(n, k) + k log p + (n − k) log(1 − p)]``, statsmodels' ``llf`` for counts.
    deviance, pearson_chi2
        As :func:`binomlab.evaluate` computes them on the training groups.
    aic, bic
        ``−2 llf + 2 rank`` and ``−2 llf + rank·log(groups)``; NaN without a rank.
    """

    fingerprint: str
    groups: int
    trials: int
    rank: int | None
    df_resid: int | None
    df_note: str | None
    log_likelihood: float
    deviance: float
    pearson_chi2: float
    aic: float
    bic: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InSample:
        fields = dict(data)
        for name in ("aic", "bic", "log_likelihood", "deviance", "pearson_chi2"):
            fields[name] = float("nan") if fields.get(name) is None else float(fields[name])
        return cls(**{k: fields.get(k) for k in cls.__dataclass_fields__})


MLP_DF_NOTE = (
    "degrees of freedom are not defined for an MLP on its training data (its effective number "
    "of parameters is unknown): evaluate it on held-out data, where df = groups"
)


def in_sample(data: Grouped, proba: np.ndarray, rank: int | None) -> InSample:
    """:class:`InSample` of probabilities ``proba`` ``[groups]`` fitted on ``data``."""
    from binomlab.metrics import deviance, pearson_chi2

    n = data.frame["n"].to_numpy().astype(np.float64)
    k = data.frame["k"].to_numpy().astype(np.float64)
    groups = len(data)
    llf = float(
        np.sum(
            gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
            + xlogy(k, proba) + xlogy(n - k, 1.0 - proba)
        )
    )  # fmt: skip
    nan = float("nan")
    return InSample(
        fingerprint=data.fingerprint,
        groups=groups,
        trials=data.trials,
        rank=rank,
        df_resid=None if rank is None else groups - rank,
        df_note=MLP_DF_NOTE if rank is None else None,
        log_likelihood=llf,
        deviance=deviance(n, k, proba),
        pearson_chi2=pearson_chi2(n, k, proba),
        aic=nan if rank is None else -2.0 * llf + 2.0 * rank,
        bic=nan if rank is None else -2.0 * llf + rank * math.log(groups),
    )


def coefficient_table(
    encoder: Encoder, X: np.ndarray, n: np.ndarray, intercept: float, coef: np.ndarray
) -> pl.DataFrame:
    """Estimates and unscaled standard errors of a logistic fit, on the features' scale.

    Parameters
    ----------
    encoder
        The model's encoder (its :meth:`~Encoder.terms` name the rows).
    X
        float ``[groups, d]``, the encoded training groups (or their index form, by
        ``encoder.layout``).
    n
        ``[groups]`` trials.
    intercept, coef
        The fitted intercept and ``[d]`` coefficients of the encoded columns.

    Returns
    -------
    pl.DataFrame
        ``term``, ``level``, ``estimate``, ``std_error``: the intercept first, then one row per
        encoded column.
    """
    theta = np.r_[intercept, coef]
    design = Design(X, encoder.layout)
    p = sigmoid(design.logits(np.r_[coef, intercept]))
    information = design.hessian(n * p * (1.0 - p))
    d = design.d
    order = np.r_[d, np.arange(d)]  # the intercept first
    information = information[np.ix_(order, order)]
    try:
        covariance = np.linalg.inv(information)
    except np.linalg.LinAlgError:
        covariance = np.full_like(information, np.nan)
    transform = to_raw_scale(encoder)
    estimates = transform @ theta
    variance = np.einsum("ij,jk,ik->i", transform, covariance, transform)
    terms = encoder.terms()
    return pl.DataFrame(
        {
            "term": ["(intercept)", *(t for t, _ in terms)],
            "level": [None, *(level for _, level in terms)],
            "estimate": estimates,
            "std_error": np.sqrt(np.maximum(variance, 0.0)),
        },
        schema={k: SUMMARY_SCHEMA[k] for k in ("term", "level", "estimate", "std_error")},
    )


def to_raw_scale(encoder: Encoder) -> np.ndarray:
    """The linear map from ``[intercept, encoded coefficients]`` to the features' scale.

    A standardised column ``(x − mean)/scale`` with coefficient ``w`` is ``w/scale`` per unit of
    ``x``, moves the intercept by ``−w·mean/scale``, and its null indicator (where the null is
    encoded as the mean) by ``+w·mean/scale``.
    """
    names = encoder.output_names
    transform = np.eye(len(names) + 1)
    for feature, (mean, scale) in encoder.standardisation().items():
        if feature not in names:  # its column was aliased (a constant) and dropped
            continue
        j = names.index(feature) + 1
        transform[j, j] = 1.0 / scale
        transform[0, j] = -mean / scale
        indicator = f"{feature}=<null>"
        if indicator in names:
            transform[names.index(indicator) + 1, j] = mean / scale
    return transform


class Summary(pl.DataFrame):
    """The coefficient table of a logistic GLM: a Polars frame (``term``, ``level``,
    ``estimate``, ``std_error``, ``z``, ``p_value``, ``ci_lower``, ``ci_upper``) that prints
    in statsmodels' layout, with the fit's statistics in :attr:`info` (``groups``,
    ``trials``, ``df_model``, ``df_resid``, ``scale``, ``log_likelihood``, ``deviance``,
    ``pearson_chi2``, ``aic``, ``bic``, ``level``, ``backend``, ``optimizer``, ``iterations``).

    Frames derived from it (``filter``, ``select``, ``head``, ...) print as plain Polars
    frames, and their ``info`` is None.
    """

    info: dict[str, Any] | None = None

    def __init__(self, table: pl.DataFrame, info: Mapping[str, Any]) -> None:
        super().__init__(table)
        self.info = dict(info)

    def text(self) -> str:
        """The table in statsmodels' layout."""
        info = getattr(self, "info", None) or {}
        width = 96
        left = [
            ("Model:", "GLM Binomial (logit)"),
            ("Backend:", f"{info.get('backend')} / {info.get('optimizer')}"),
            ("No. Groups:", f"{info.get('groups')}"),
            ("No. Trials:", f"{info.get('trials')}"),
            ("Df Residuals:", f"{info.get('df_resid')}"),
            ("Df Model:", f"{info.get('df_model')}"),
        ]
        nan = float("nan")
        right = [
            ("Scale:", f"{info.get('scale', 1.0):.4g}"),
            ("Log-Likelihood:", f"{info.get('log_likelihood', nan):.6g}"),
            ("Deviance:", f"{info.get('deviance', nan):.6g}"),
            ("Pearson chi2:", f"{info.get('pearson_chi2', nan):.4g}"),
            ("AIC / BIC:", f"{info.get('aic', nan):.6g} / {info.get('bic', nan):.6g}"),
            ("Iterations:", f"{info.get('iterations')}"),
        ]
        lines = ["=" * width, "Generalized Linear Model Regression Results".center(width)]
        lines.append("=" * width)
        for (a, b), (c, e) in zip(left, right, strict=True):
            lines.append(f"{a:<16}{b:>30}  {c:<18}{e:>30}")
        lines.append("=" * width)
        level = info.get("level", 0.95)
        lo, hi = f"[{(1 - level) / 2:.3f}", f"{1 - (1 - level) / 2:.3f}]"
        labels = [t if lv is None else f"{t}={lv}" for t, lv in zip(self["term"], self["level"],
                                                                   strict=True)]  # fmt: skip
        name_width = max(24, *(len(s) + 1 for s in labels)) if labels else 24
        head = f"{'':<{name_width}}{'coef':>11}{'std err':>11}{'z':>9}{'P>|z|':>9}{lo:>11}{hi:>11}"
        lines += [head, "-" * width]
        for label, row in zip(labels, self.iter_rows(named=True), strict=True):
            lines.append(
                f"{label:<{name_width}}{row['estimate']:>11.4f}"
                f"{row['std_error']:>11.4f}{row['z']:>9.3f}{row['p_value']:>9.3f}"
                f"{row['ci_lower']:>11.3f}{row['ci_upper']:>11.3f}"
            )
        lines.append("=" * width)
        return "\n".join(lines)

    def __str__(self) -> str:
        if not getattr(self, "info", None):
            return super().__str__()
        return self.text()

    def __repr__(self) -> str:
        if not getattr(self, "info", None):
            return super().__repr__()
        return self.text()

    def _repr_html_(self, **kwargs: Any) -> str:
        if not getattr(self, "info", None):
            return super()._repr_html_(**kwargs)
        import html

        return f"<pre>{html.escape(self.text())}</pre>"


def summarise(
    table: pl.DataFrame,
    stats: InSample,
    *,
    scale: float | str | None,
    level: float,
    info: Mapping[str, Any],
) -> Summary:
    """:class:`Summary` of a coefficient table (unscaled standard errors) and its fit.

    Raises
    ------
    BinomlabError
        A bad ``scale`` or ``level``, or a dispersion scale without residual degrees of freedom.
    """
    level = check_fraction(level, name="level")
    phi = _scale(scale, stats)
    se = table["std_error"].to_numpy() * math.sqrt(phi)
    est = table["estimate"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est / se
    quantile = float(norm.ppf(0.5 + level / 2))
    frame = table.with_columns(
        std_error=pl.Series(se),
        z=pl.Series(z),
        p_value=pl.Series(2.0 * norm.sf(np.abs(z))),
        ci_lower=pl.Series(est - quantile * se),
        ci_upper=pl.Series(est + quantile * se),
    ).select(list(SUMMARY_SCHEMA))
    rank = stats.rank or 0
    return Summary(
        frame,
        {
            **info,
            "groups": stats.groups,
            "trials": stats.trials,
            "df_model": rank - 1,
            "df_resid": stats.df_resid,
            "scale": phi,
            "log_likelihood": stats.log_likelihood,
            "deviance": stats.deviance,
            "pearson_chi2": stats.pearson_chi2,
            "aic": stats.aic,
            "bic": stats.bic,
            "level": float(level),
        },
    )


def _scale(scale: float | str | None, stats: InSample) -> float:
    if scale is None:
        return 1.0
    if isinstance(scale, str):
        statistic = {"X2": stats.pearson_chi2, "dev": stats.deviance}.get(scale)
        if statistic is None:
            msg = (
                "Expected scale to be None (binomial), 'X2' (Pearson χ² / df_resid, the "
                "quasi-binomial dispersion), 'dev' (deviance / df_resid) or a number > 0. "
                f"Received: scale={scale!r}"
            )
            raise BinomlabError(msg)
        if not stats.df_resid or stats.df_resid <= 0:
            msg = (
                f"scale={scale!r} divides by the residual degrees of freedom, and this fit has "
                f"{stats.df_resid} ({stats.groups} groups − rank {stats.rank}): the dispersion "
                "cannot be estimated. Use scale=None or a number."
            )
            raise BinomlabError(msg)
        return float(statistic / stats.df_resid)
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not 0 < scale < math.inf:
        msg = (
            "Expected scale to be None, 'X2', 'dev' or a finite number > 0. "
            f"Received: scale={scale!r}"
        )
        raise BinomlabError(msg)
    return float(scale)


def lrt(smaller: Any, larger: Any, data: Grouped) -> dict[str, float | int]:
    """Likelihood-ratio test of two nested models fitted on ``data``.

    Parameters
    ----------
    smaller, larger
        Fitted (or loaded) models with a rank (the logistic spec), both fitted on ``data``,
        ``smaller``'s features a subset of ``larger``'s.
    data
        The training groups of both models.

    Returns
    -------
    dict
        ``statistic`` (``2·(llf_larger − llf_smaller)``, equal to the drop in deviance),
        ``df`` (the difference of the ranks), ``p_value`` (upper tail of χ² on ``df``),
        ``deviance_smaller``, ``deviance_larger``.

    Raises
    ------
    BinomlabError
        A model without a rank (an MLP), a model not fitted on ``data``, features that are not
        nested, or a ``larger`` model that does not have more parameters or fits worse.
    """
    from binomlab.metrics import evaluate

    if not isinstance(data, Grouped):
        msg = f"lrt needs the Grouped both models were fitted on. Received: {type(data).__name__}"
        raise BinomlabError(msg)
    for name, model in (("smaller", smaller), ("larger", larger)):
        stats = getattr(model, "in_sample_", None)
        if not isinstance(stats, InSample):
            msg = f"{name} must be a fitted or loaded binomlab model. Received: {model!r}"
            raise BinomlabError(msg)
        if stats.rank is None:
            msg = f"lrt needs models with degrees of freedom; {name}: {stats.df_note}."
            raise BinomlabError(msg)
        note = getattr(model, "summary_note_", None)
        if note is not None:
            msg = (
                "lrt compares maximum-likelihood fits of the binomial GLM, and "
                f"{name} is not one: {note}."
            )
            raise BinomlabError(msg)
        if stats.fingerprint != data.fingerprint:
            msg = (
                f"{name} was not fitted on this data (its training data's fingerprint differs): "
                "the likelihood-ratio test compares two models on the data they were both "
                "fitted on."
            )
            raise BinomlabError(msg)
    extra = [f for f in smaller.features if f not in larger.features]
    if extra:
        swapped = all(f in smaller.features for f in larger.features)
        hint = " Swap the arguments: lrt(smaller, larger, data)." if swapped else ""
        msg = (
            f"The models are not nested: smaller has the feature(s) {extra} that larger "
            f"lacks.{hint}"
        )
        raise BinomlabError(msg)
    df = larger.in_sample_.rank - smaller.in_sample_.rank
    small = evaluate(data, smaller)["deviance"]
    large = evaluate(data, larger)["deviance"]
    statistic = small - large
    if df <= 0 or statistic < -1e-6 * max(1.0, abs(small)):
        msg = (
            f"larger must have more parameters and fit at least as well as smaller: ranks "
            f"{smaller.in_sample_.rank} and {larger.in_sample_.rank}, deviances {small:.6g} and "
            f"{large:.6g}. Swap the arguments, or check that the models are nested."
        )
        raise BinomlabError(msg)
    statistic = max(statistic, 0.0)
    return {
        "statistic": float(statistic),
        "df": int(df),
        "p_value": float(chi2_distribution.sf(statistic, df)),
        "deviance_smaller": float(small),
        "deviance_larger": float(large),
    }


class GLMResults:
    """What a fitted or loaded model tells about its fit on the training groups (a mixin of
    ``Fitted`` and ``Predictor``): ``in_sample_`` (:class:`InSample`), the coefficient table
    (None with the reason in ``summary_note_``) and :meth:`summary`."""

    in_sample_: InSample
    coefficient_table_: pl.DataFrame | None
    summary_note_: str | None

    @property
    def rank_(self) -> int | None:
        """Rank of the design ``[1, X]`` on the training groups: the identified parameters of
        the logistic spec (None for an MLP, whose degrees of freedom are not defined)."""
        return self.in_sample_.rank

    @property
    def df_model_(self) -> int | None:
        """``rank − 1``, statsmodels' ``df_model``."""
        return None if self.in_sample_.rank is None else self.in_sample_.rank - 1

    @property
    def df_resid_(self) -> int | None:
        """``groups − rank`` on the training groups, statsmodels' ``df_resid``."""
        return self.in_sample_.df_resid

    @property
    def log_likelihood_(self) -> float:
        """Log-likelihood on the training groups, binomial coefficients included."""
        return self.in_sample_.log_likelihood

    @property
    def aic_(self) -> float:
        """``−2 llf + 2 rank`` on the training groups (NaN without a rank)."""
        return self.in_sample_.aic

    @property
    def bic_(self) -> float:
        """``−2 llf + rank·log(groups)`` on the training groups (NaN without a rank)."""
        return self.in_sample_.bic

    def _summary_info(self) -> dict[str, Any]:
        return {}

    def summary(self, *, scale: float | str | None = None, level: float = 0.95) -> Summary:
        """The GLM coefficient table: term, level, estimate, std. error, z, p-value and the
        ``level`` confidence interval, on the features' own scale, with the fit's statistics
        (``.info``); ``print()`` shows it in statsmodels' layout.

        Parameters
        ----------
        scale
            None: binomial standard errors (dispersion 1). ``"X2"``: quasi-binomial, scaled by
            Pearson χ² / df_resid (R's ``quasibinomial``; statsmodels gives it for proportions
            ``k/n`` with ``var_weights=n`` and ``fit(scale="X2")``, not for a two-column count
            endog); ``"dev"``: by deviance / df_resid; a number: that dispersion.
        level
            Confidence level of the intervals.

        Raises
        ------
        BinomlabError
            The model is not a logistic GLM's maximum-likelihood fit (an MLP, the
            beta-binomial loss, adam, a weight-decay penalty, a fit that did not converge:
            the message says which and how to refit), or a bad ``scale``/``level``.
        """
        if self.coefficient_table_ is None:
            raise BinomlabError(f"summary() is not available: {self.summary_note_}")
        return summarise(
            self.coefficient_table_,
            self.in_sample_,
            scale=scale,
            level=level,
            info=self._summary_info(),
        )


def summary_refusal(
    spec_kind: str, loss: str, optimizer: str, weight_decay: float, stop_reason: str
) -> str | None:
    """Why a fit has no GLM coefficient table (None when it has one)."""
    if spec_kind != "logistic":
        return f"it needs the logistic spec, and this model is {spec_kind}"
    if loss != "binomial":
        return f"it describes the binomial GLM, and this model has loss={loss!r}"
    if optimizer not in ("newton", "lbfgs"):
        return (
            f"optimizer={optimizer!r} does not reach the maximum-likelihood estimate; fit with "
            "optimizer='newton' (the default for the logistic spec)"
        )
    if weight_decay:
        return (
            f"weight_decay={weight_decay:g} penalises the fit, and the standard errors from the "
            "Fisher information are those of the unpenalised maximum-likelihood estimate; fit "
            "with weight_decay=0"
        )
    if stop_reason != "converged":
        return (
            f"the fit ended with stop_reason={stop_reason!r}, so the estimates are not the "
            "maximum-likelihood estimate; fit again until it converges"
        )
    return None
