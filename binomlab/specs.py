"""Backend-neutral model specifications: what network to build, not how to train it.

A spec is a small frozen dataclass that every backend turns into its own network, and that
travels as JSON in an exported model's manifest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from binomlab.errors import BinomlabError

__all__ = ["ACTIVATIONS", "MLP", "Logistic", "ModelSpec", "parse_spec", "spec_from_dict"]

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


ModelSpec = Logistic | MLP
_SPECS: dict[str, type[Logistic] | type[MLP]] = {"logistic": Logistic, "mlp": MLP}


def parse_spec(model: str | ModelSpec) -> ModelSpec:
    """A spec from a spec object or a shorthand: ``"logistic"``, ``"mlp"``, ``"mlp:64,32"``.

    Raises
    ------
    BinomlabError
        An unknown shorthand or layer list.
    """
    if isinstance(model, Logistic | MLP):
        return model
    if not isinstance(model, str):
        msg = (
            "Expected model to be 'logistic', 'mlp:64,32', bl.Logistic() or bl.MLP(...). "
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
    msg = f"Expected model to be one of 'logistic', 'mlp' or 'mlp:64,32'. Received: model={model!r}"
    raise BinomlabError(msg)


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
    return MLP(**{**fields, "hidden": tuple(fields.get("hidden", (64, 32)))})
