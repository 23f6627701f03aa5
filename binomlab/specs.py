"""Backend-neutral model specifications: what network to build, not how to train it.

A spec is a small frozen dataclass that every backend turns into its own network, and that
travels as JSON in an exported model's manifest.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from binomlab.errors import BinomlabError

__all__ = [
    "ACTIVATIONS",
    "GBDT",
    "MLP",
    "NETWORK_KINDS",
    "Logistic",
    "ModelSpec",
    "parse_spec",
    "spec_from_dict",
]

ACTIVATIONS = ("relu", "tanh", "gelu", "silu", "sigmoid")


@dataclass(frozen=True)
class Logistic:
    """The linear logit ``z = x·w + b``: logistic regression, the binomial GLM."""

    kind: ClassVar[str] = "logistic"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, ``{"kind": "logistic"}``."""
        return {"kind": self.kind}

    def __str__(self) -> str:
        return "logistic"


@dataclass(frozen=True)
class MLP:
    """A multilayer perceptron ending in one logit.

    Parameters
    ----------
    hidden
        Widths of the hidden layers, e.g. ``(64, 32)``; at least one, each >= 1.
    activation
        One of :data:`ACTIVATIONS`, applied after every hidden layer.
    dropout
        Dropout rate after every hidden activation, in ``[0, 1)``.
    embed
        Learned embeddings of the features with levels: None (default: each level has its
        own row of the first layer's weight, a lookup equal to one-hot inputs), ``"auto"``
        (fastai's size rule per feature, ``min(600, round(1.6 · levels^0.56))``:
        :func:`binomlab.layout.embedding_size`), an int ``d`` (every feature), or
        ``{feature: d}`` (those; the rule for the rest). The embeddings are concatenated
        with the numeric features before the first hidden layer. Rare levels pool into
        ``<other>`` by ``bl.fit(min_frequency=...)``, as for every model.

    Raises
    ------
    BinomlabError
        On an empty or non-positive ``hidden``, an unknown activation, a bad dropout rate
        or a bad ``embed``.
    """

    hidden: tuple[int, ...] = (64, 32)
    activation: str = "relu"
    dropout: float = 0.0
    embed: int | str | tuple[tuple[str, int], ...] | None = None
    kind: ClassVar[str] = "mlp"

    def __post_init__(self) -> None:
        hidden = (self.hidden,) if isinstance(self.hidden, int) else tuple(self.hidden)
        if not hidden or any(
            isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden
        ):
            msg = (
                "MLP hidden must be positive layer widths, e.g. (64, 32). "
                f"Received: {self.hidden!r}"
            )
            raise BinomlabError(msg)
        object.__setattr__(self, "hidden", hidden)
        if self.activation not in ACTIVATIONS:
            msg = (
                f"Expected activation to be one of {ACTIVATIONS}. "
                f"Received: activation={self.activation!r}"
            )
            raise BinomlabError(msg)
        if not 0.0 <= float(self.dropout) < 1.0:
            msg = f"Expected dropout in [0, 1). Received: dropout={self.dropout!r}"
            raise BinomlabError(msg)
        object.__setattr__(self, "dropout", float(self.dropout))
        object.__setattr__(self, "embed", _check_embed(self.embed))

    @property
    def embeddings(self) -> int | str | dict[str, int] | None:
        """``embed`` as given: None, ``"auto"``, an int or ``{feature: d}``."""
        return dict(self.embed) if isinstance(self.embed, tuple) else self.embed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, e.g. ``{"kind": "mlp", "hidden": [64, 32], ...}``."""
        out = {"kind": self.kind, **asdict(self), "hidden": list(self.hidden)}
        if self.embed is None:
            out.pop("embed")
        else:
            out["embed"] = self.embeddings
        return out

    def __str__(self) -> str:
        extra = "" if self.activation == "relu" else f",{self.activation}"
        drop = "" if self.dropout == 0 else f",dropout={self.dropout:g}"
        embed = self.embeddings
        if isinstance(embed, dict):
            embed = "{" + ",".join(f"{k}:{v}" for k, v in embed.items()) + "}"
        emb = "" if embed is None else f",embed={embed}"
        return f"mlp:{','.join(map(str, self.hidden))}{extra}{drop}{emb}"


def _check_embed(embed: Any) -> int | str | tuple[tuple[str, int], ...] | None:
    """``MLP(embed=...)`` checked: None, "auto", a positive int, or ``{feature: int}`` (kept
    as sorted pairs, so the spec stays hashable)."""
    if embed is None or embed == "auto":
        return embed

    def positive(d: Any) -> bool:
        return isinstance(d, int) and not isinstance(d, bool) and d >= 1

    if positive(embed):
        return int(embed)
    pairs = embed.items() if isinstance(embed, dict) else embed
    if isinstance(pairs, tuple | list | type({}.items())) and not isinstance(embed, str):
        try:
            items = [(name, d) for name, d in pairs]
        except (TypeError, ValueError):
            items = None
        if items and all(isinstance(n, str) and positive(d) for n, d in items):
            return tuple(sorted((n, int(d)) for n, d in items))
    msg = (
        "Expected embed to be None, 'auto', a positive int or {feature: positive int}. "
        f"Received: embed={embed!r}"
    )
    raise BinomlabError(msg)


@dataclass(frozen=True)
class GBDT:
    """Gradient-boosted decision trees ending in one logit: ``z = base + Σ_t tree_t(x)``.

    Trained on the grouped binomial loss itself (each group weighs its trials), so the
    options below mean the same on the groups as on the raw rows; see the README's
    "Gradient boosting" section for which library options are exact on groups.

    Parameters
    ----------
    trees
        The most boosting rounds (trees); the best epoch's count is kept, so early stopping
        may keep fewer. Default 200.
    leaves
        The most leaves per tree (LightGBM's ``num_leaves``), >= 2. Default 31.
    learning_rate
        Shrinkage of every tree, in (0, 1]. Default 0.1. It is the spec's, not the training
        config's: ``bl.fit(lr=...)`` does not apply to boosting.
    min_hessian_in_leaf
        The least summed Hessian ``Σ n·p(1 − p)`` (trials weighted by ``p(1 − p)``) a leaf
        holds, >= 0 (LightGBM's ``min_sum_hessian_in_leaf``): the leaf-size rule that is the
        same on groups and on raw rows. Default 1.0.
    l2
        L2 penalty ``l2/2·Σ w²`` on every tree's leaf values, on the summed (not per-trial)
        loss (LightGBM's ``lambda_l2``), >= 0. Default 0.
    max_depth
        The most levels per tree, or None (no limit; ``leaves`` bounds the tree).

    Raises
    ------
    BinomlabError
        On a value of the wrong type or out of range, named.
    """

    trees: int = 200
    leaves: int = 31
    learning_rate: float = 0.1
    min_hessian_in_leaf: float = 1.0
    l2: float = 0.0
    max_depth: int | None = None
    kind: ClassVar[str] = "gbdt"

    def __post_init__(self) -> None:
        for name, least in (("trees", 1), ("leaves", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                msg = (
                    f"Expected GBDT {name} to be an integer >= {least}. Received: {name}={value!r}"
                )
                raise BinomlabError(msg)
        depth = self.max_depth
        if depth is not None and (
            isinstance(depth, bool) or not isinstance(depth, int) or depth < 1
        ):
            msg = f"Expected GBDT max_depth to be None or an integer >= 1. Received: {depth=!r}"
            raise BinomlabError(msg)
        rate = _real("learning_rate", self.learning_rate)
        if not 0.0 < rate <= 1.0:
            msg = f"Expected GBDT learning_rate in (0, 1]. Received: learning_rate={rate!r}"
            raise BinomlabError(msg)
        object.__setattr__(self, "learning_rate", rate)
        for name in ("min_hessian_in_leaf", "l2"):
            value = _real(name, getattr(self, name))
            if value < 0:
                msg = f"Expected GBDT {name} >= 0. Received: {name}={value!r}"
                raise BinomlabError(msg)
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, e.g. ``{"kind": "gbdt", "trees": 200, ...}``."""
        return {"kind": self.kind, **asdict(self)}

    def __str__(self) -> str:
        default = GBDT()
        extra = "".join(
            f",{name}={getattr(self, name):g}"
            for name in ("learning_rate", "min_hessian_in_leaf", "l2")
            if getattr(self, name) != getattr(default, name)
        )
        depth = "" if self.max_depth is None else f",max_depth={self.max_depth}"
        return f"gbdt:{self.trees},{self.leaves}{extra}{depth}"


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        msg = f"Expected GBDT {name} to be a finite number. Received: {name}={value!r}"
        raise BinomlabError(msg)
    return float(value)


ModelSpec = Logistic | MLP | GBDT
_SPECS: dict[str, type[Logistic] | type[MLP] | type[GBDT]] = {
    "logistic": Logistic,
    "mlp": MLP,
    "gbdt": GBDT,
}
NETWORK_KINDS = ("logistic", "mlp")
"""Spec kinds that are networks trained by gradient steps (the others: ``"gbdt"``)."""
_GBDT_KEYS = ("learning_rate", "min_hessian_in_leaf", "l2", "max_depth")


def parse_spec(model: str | ModelSpec) -> ModelSpec:
    """A spec from a spec object or a shorthand: ``"logistic"``, ``"mlp"``, ``"mlp:64,32"``,
    ``"gbdt"``, ``"gbdt:200"`` (trees), ``"gbdt:200,31"`` (trees, leaves) and
    ``"gbdt:200,31,learning_rate=0.05"`` (any of ``learning_rate``, ``min_hessian_in_leaf``,
    ``l2``, ``max_depth`` by name after them).

    Raises
    ------
    BinomlabError
        An unknown shorthand or layer list.
    """
    if isinstance(model, Logistic | MLP | GBDT):
        return model
    if not isinstance(model, str):
        msg = (
            "Expected model to be 'logistic', 'mlp:64,32', 'gbdt', bl.Logistic(), bl.MLP(...) "
            "or bl.GBDT(...). "
            f"Received: model={model!r}"
        )
        raise BinomlabError(msg)
    name, _, args = model.strip().lower().partition(":")
    if name == "logistic" and not args:
        return Logistic()
    if name == "mlp":
        if not args:
            return MLP()
        try:
            hidden = tuple(int(h) for h in args.split(","))
        except ValueError:
            msg = f"Expected layer widths after 'mlp:', e.g. 'mlp:64,32'. Received: model={model!r}"
            raise BinomlabError(msg) from None
        return MLP(hidden=hidden)
    if name == "gbdt":
        return _parse_gbdt(model, args)
    msg = (
        "Expected model to be one of 'logistic', 'mlp', 'mlp:64,32', 'gbdt' or 'gbdt:200,31'. "
        f"Received: model={model!r}"
    )
    raise BinomlabError(msg)


def _parse_gbdt(model: str, args: str) -> GBDT:
    """``GBDT`` of the shorthand's arguments: trees, leaves, then ``name=value`` pairs."""
    positional: list[int] = []
    named: dict[str, Any] = {}
    try:
        for part in filter(None, (a.strip() for a in args.split(","))):
            key, eq, value = part.partition("=")
            if eq:
                if key not in _GBDT_KEYS or key in named:
                    raise ValueError(key)
                named[key] = int(value) if key == "max_depth" else float(value)
            elif named or len(positional) == 2:
                raise ValueError(part)
            else:
                positional.append(int(part))
    except ValueError:
        msg = (
            "Expected 'gbdt:TREES,LEAVES' then any of "
            f"{', '.join(k + '=...' for k in _GBDT_KEYS)}, e.g. 'gbdt:200,31,learning_rate=0.05'. "
            f"Received: model={model!r}"
        )
        raise BinomlabError(msg) from None
    return GBDT(**dict(zip(("trees", "leaves"), positional, strict=False)), **named)


def spec_from_dict(data: dict[str, Any]) -> ModelSpec:
    """Inverse of ``spec.to_dict()``.

    Raises
    ------
    BinomlabError
        An unknown ``kind``.
    """
    kind = data.get("kind")
    if kind not in _SPECS:
        msg = f"Unknown model spec kind {kind!r}; expected one of {sorted(_SPECS)}."
        raise BinomlabError(msg)
    if kind == "logistic":
        return Logistic()
    fields = {k: v for k, v in data.items() if k != "kind"}
    if kind == "gbdt":
        return GBDT(**fields)
    return MLP(**{**fields, "hidden": tuple(fields.get("hidden", (64, 32)))})
