"""The Train tab: pick a backend, a model and its training options; train in the background."""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as widgets

from binomlab import backends
from binomlab.backends.protocol import (
    DEFAULT_EPOCHS,
    DETERMINISTIC,
    TrainConfig,
    default_optimizer,
)
from binomlab.errors import BinomlabError
from binomlab.grouped import Grouped
from binomlab.specs import MLP, Logistic, ModelSpec, parse_spec
from binomlab.training import Fitted, fit, resolve
from binomlab.widgets._render import curve_svg
from binomlab.widgets.panel import Panel
from binomlab.widgets.state import LabState

__all__ = ["TrainPanel"]

REDRAW_SECONDS = 0.1  # the curve is redrawn at most this often (and after the last epoch)
FINISHED = ("completed", "converged", "early_stopping", "max_iter", "stalled")
PHI_SEPARATOR = "/"
"""Joins a loss and its φ model in a choice's value: ``"beta-binomial/network"``."""
MODEL_LABELS = {"logistic": "logistic regression", "mlp": "MLP"}
"""The model dropdown's label of each spec kind a backend can list."""
FIELDS = {
    "hidden": "hidden layers",
    "epochs": "epochs",
    "lr": "learning rate",
    "batch_size": "batch size",
    "seed": "seed",
}
"""The inputs checked one by one, and their names in messages."""
OPTIONS = "options"
"""The key of :meth:`TrainPanel.problems` for a combination of choices that cannot train."""


def loss_choices(engine: Any) -> list[tuple[str, str]]:
    """``(label, value)`` pairs for the loss dropdown: the backend's losses, and the
    beta-binomial with φ from the network when the backend can learn it."""
    choices = [(loss, loss) for loss in getattr(engine, "losses", ("binomial",))]
    if "beta-binomial" in dict(choices) and "network" in getattr(engine, "phi_models", ()):
        choices.append(("beta-binomial, φ per group", f"beta-binomial{PHI_SEPARATOR}network"))
    return choices


def model_choices(engine: Any) -> list[tuple[str, str]]:
    """``(label, kind)`` pairs for the model dropdown: the spec kinds the backend builds."""
    return [(MODEL_LABELS.get(kind, kind), kind) for kind in engine.specs]


def optimizer_choices(engine: Any, spec: ModelSpec, loss: str, phi: str) -> list[str]:
    """The backend's optimizers that can train ``spec`` with ``loss`` and ``phi``, as the
    core judges it (:meth:`TrainConfig.resolve`): ``"newton"`` only for the logistic spec with
    the binomial loss."""
    usable = []
    for optimizer in engine.optimizers:
        try:
            TrainConfig(optimizer=optimizer, loss=loss, phi=phi).resolve(engine, spec, 1)
        except BinomlabError:
            continue
        usable.append(optimizer)
    return usable


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _field_error_html(message: str) -> str:
    return (
        '<span class="binomlab-field-error" style="color:var(--jp-error-color1,#d32f2f);'
        f'font-size:12px;white-space:pre-wrap">{html.escape(message)}</span>'
    )


class TrainPanel(Panel):
    """Train a model with ``bl.fit`` in a background thread, with progress, curve and Stop.

    Parameters
    ----------
    train, val
        Training and validation groups; ignored when ``state`` is given.
    state
        A :class:`LabState` shared with other panels; trained models are added to it.
    backend_names
        The backends offered; defaults to those installed
        (``bl.backends.available(check=True)``).

    Attributes
    ----------
    backend, model, hidden, loss, optimizer, epochs, lr, batch_size, seed
        The input widgets. ``model`` offers the specs the backend builds, ``loss`` the losses
        it trains, ``optimizer`` those of its optimizers that apply to the model and loss.
        ``epochs`` is the number of epochs for Adam/AdamW and the maximum number of
        iterations for Newton and L-BFGS (which stop earlier once converged). The numbers
        are not clamped: a value ``bl.fit`` would refuse is shown as an error beside its
        field (see :meth:`problems`).
    field_errors
        ``{field: HTML}``, the error beside each of ``hidden``, ``epochs``, ``lr``,
        ``batch_size`` and ``seed`` (empty when the value is valid).
    train_button, stop_button
        Train starts a run; it is disabled, and a click refused with the message, while a run
        is going or an input is invalid. Stop ends a run after the current epoch, keeping the
        best weights.
    progress
        ``IntProgress`` whose ``max`` is the epoch (or iteration) budget.
    curve
        The per-epoch rows ``{"epoch", "train_nll", "val_nll"}`` of the current run.
    last_model, last_name
        The last model trained and its name in the state's models.
    last_error
        The exception of the last failed run or refused click (also shown in the panel), or
        None; a valid input clears it.
    callbacks
        Extra ``bl.fit`` callbacks added to every run, ``callback(epoch, metrics) -> continue?``.
    """

    def __init__(
        self,
        train: Grouped | None = None,
        val: Grouped | None = None,
        *,
        state: LabState | None = None,
        backend_names: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(state if state is not None else LabState(train, val), **kwargs)
        names = list(backend_names) if backend_names is not None else backends.available(check=True)
        default = (
            "lightning"
            if "lightning" in names
            else ([n for n in names if n != "reference"] or names)[0]
        )
        self._engines: dict[str, Any] = {}
        self.last_model: Fitted | None = None
        self.last_name: str | None = None
        self.callbacks: list[Callable[[int, Mapping[str, float]], bool | None]] = []
        self._stop = threading.Event()
        self._drawn = 0.0
        self._mode = ""
        self._updating = False
        self._problems: dict[str, str] = {}

        style = {"description_width": "110px"}
        wide = widgets.Layout(width="300px")
        self.backend = widgets.Dropdown(
            options=names,
            value=default,
            description="backend",
            style=style,
            layout=wide,
        )
        self.model = widgets.Dropdown(
            options=[(label, kind) for kind, label in MODEL_LABELS.items()],
            value="logistic",
            description="model",
            style=style,
            layout=wide,
        )
        self.hidden = widgets.Text(
            value="64,32",
            description="hidden layers",
            placeholder="e.g. 64,32",
            style=style,
            layout=wide,
            disabled=True,
        )
        self.optimizer = widgets.Dropdown(
            options=["auto"], value="auto", description="optimizer", style=style, layout=wide
        )
        self.loss = widgets.Dropdown(
            options=[("binomial", "binomial")],
            value="binomial",
            description="loss",
            style=style,
            layout=wide,
        )
        # unbounded: a Bounded*Text would clamp a bad value silently; problems() reports it
        self.epochs = widgets.IntText(
            value=DEFAULT_EPOCHS["adam"], description="epochs", style=style, layout=wide
        )
        self.lr = widgets.FloatText(
            value=0.01, step=0.001, description="learning rate", style=style, layout=wide
        )
        self.batch_size = widgets.IntText(
            value=1024, description="batch size", style=style, layout=wide
        )
        self.seed = widgets.IntText(value=0, description="seed", style=style, layout=wide)
        self.field_errors = {name: widgets.HTML("") for name in FIELDS}
        self.train_button = widgets.Button(
            description="Train", button_style="primary", icon="play", tooltip="Train the model"
        )
        self.stop_button = widgets.Button(
            description="Stop",
            button_style="warning",
            icon="stop",
            disabled=True,
            tooltip="Stop after this epoch and keep the best weights",
        )
        self.progress = widgets.IntProgress(
            value=0,
            min=0,
            max=DEFAULT_EPOCHS["adam"],
            description="epoch 0",
            style=style,
            layout=widgets.Layout(width="520px"),
        )
        self.status = widgets.HTML("Choose a backend and a model, then press <b>Train</b>.")
        self.curve_view = widgets.HTML(curve_svg([]))
        self.train_button.add_class("binomlab-train")
        self.stop_button.add_class("binomlab-stop")
        self.progress.add_class("binomlab-progress")
        self.status.add_class("binomlab-status")

        choices = (self.backend, self.model, self.loss, self.optimizer)
        for widget in (*choices, *self._inputs().values()):
            widget.observe(self._on_change, names="value")
        self.train_button.on_click(self._on_train)
        self.stop_button.on_click(self._on_stop)
        self._on_change(None)
        self.children = (self._layout(), self.error)

    def _layout(self) -> widgets.HBox:
        """The form (each number with its error beside it) left of the run's view."""
        fields = [widgets.HBox([w, self.field_errors[n]]) for n, w in self._inputs().items()]
        form = widgets.VBox(
            [self.backend, self.model, fields[0], self.loss, self.optimizer, *fields[1:]]
        )
        buttons = widgets.HBox([self.train_button, self.stop_button])
        run = widgets.VBox([buttons, self.progress, self.status, self.curve_view])
        return widgets.HBox([form, run])

    # -- state -------------------------------------------------------------------------------

    @property
    def curve(self) -> list[dict[str, Any]]:
        """The per-epoch rows of the current (or last) run."""
        return self.state.history

    @property
    def running(self) -> bool:
        """True while a training thread runs."""
        return self.state.training

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the training thread ends (or ``timeout`` seconds); True if it ended."""
        thread = self.state.thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _engine(self, name: str) -> Any:
        if name not in self._engines:
            self._engines[name] = backends.get(name)
        return self._engines[name]

    def _inputs(self) -> dict[str, widgets.ValueWidget]:
        """The widgets of :data:`FIELDS`, by field."""
        return {
            "hidden": self.hidden,
            "epochs": self.epochs,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }

    def _kind_spec(self) -> ModelSpec:
        """A spec of the chosen kind (whatever the hidden layers say)."""
        return Logistic() if self.model.value == "logistic" else MLP()

    def _loss_phi(self) -> tuple[str, str]:
        loss, _, phi = self.loss.value.partition(PHI_SEPARATOR)
        return loss, phi or "scalar"

    def effective_optimizer(self) -> str:
        """The optimizer ``bl.fit`` will use with the current choices."""
        engine = self._engine(self.backend.value)
        if self.optimizer.value != "auto":
            return self.optimizer.value
        return default_optimizer(engine, self._kind_spec(), self._loss_phi()[0])

    def spec(self) -> ModelSpec:
        """The model spec of the current choices.

        Raises
        ------
        BinomlabError
            The hidden layers are not a list of positive widths.
        """
        if self.model.value == "logistic":
            return Logistic()
        return parse_spec(f"mlp:{self.hidden.value.replace(' ', '')}")

    def _choices(self) -> dict[str, Any]:
        """The ``bl.fit`` options the dropdowns give (the binomial loss left at its default)."""
        options: dict[str, Any] = {
            "backend": self.backend.value,
            "optimizer": None if self.optimizer.value == "auto" else self.optimizer.value,
        }
        loss, phi = self._loss_phi()
        if loss != "binomial":
            options["loss"] = loss
            if phi != "scalar":
                options["phi"] = phi
        return options

    def _numbers(self) -> dict[str, Any]:
        """The ``bl.fit`` options the number fields give (lr and batch size only for the
        mini-batch optimizers)."""
        numbers = {"epochs": self.epochs.value, "seed": self.seed.value}
        if self.effective_optimizer() not in DETERMINISTIC:
            numbers["lr"] = self.lr.value
            numbers["batch_size"] = self.batch_size.value
        return numbers

    def fit_options(self) -> dict[str, Any]:
        """The keyword arguments of ``bl.fit`` for the current choices (without callbacks).

        Raises
        ------
        BinomlabError
            The hidden layers are not a list of positive widths.
        """
        return {
            "model": self.spec(),
            "val": self.state.val,
            **self._choices(),
            **self._numbers(),
        }

    def problems(self) -> dict[str, str]:
        """What ``bl.fit`` would refuse in the current inputs, ``{field: message}``.

        Each field of :data:`FIELDS` is checked on its own by the core's
        :func:`binomlab.training.resolve`, then all of them together; a combination of
        choices that cannot train is under :data:`OPTIONS`. Empty when the inputs are valid
        (or when there is no training data to check them against).
        """
        train = self.state.train
        if not isinstance(train, Grouped):
            return {}
        found: dict[str, str] = {}
        try:
            spec = self.spec()
        except BinomlabError as err:
            found["hidden"], spec = str(err), self._kind_spec()
        choices = {"model": spec, **self._choices()}
        base = self._refusal(train, choices)
        if base is not None:
            return {**found, OPTIONS: base}
        numbers = self._numbers()
        for name, value in numbers.items():
            message = self._refusal(train, {**choices, name: value})
            if message is not None:
                found[name] = message
        if not found:
            message = self._refusal(train, {**choices, **numbers})
            if message is not None:
                found[OPTIONS] = message
        return found

    def _refusal(self, train: Grouped, options: dict[str, Any]) -> str | None:
        """The message ``resolve(train, **options)`` raises, or None."""
        try:
            resolve(train, **{**options, "backend": self._engine(options["backend"])})
        except (BinomlabError, TypeError) as err:
            return str(err)
        return None

    def _problem_error(self) -> BinomlabError:
        """The current problems as one error, each message after its field's name."""
        lines = [
            message if name == OPTIONS else f"{FIELDS[name]}: {message}"
            for name, message in self._problems.items()
        ]
        return BinomlabError("\n".join(lines))

    # -- events ------------------------------------------------------------------------------

    def _on_change(self, change: Any) -> None:
        """Any input changed: offer what the backend can train, then check the inputs."""
        if self._updating:
            return
        self._updating = True
        try:
            engine = self._engine(self.backend.value)
            self._offer(engine)
            self._on_options()
        except Exception as err:  # a plugin that fails to build: show it, keep the panel
            self._problems = {OPTIONS: f"{type(err).__name__}: {err}"}
            self._show_error(err)
        else:
            self._check(user=change is not None)
        finally:
            self._updating = False
            self.train_button.disabled = self.running or bool(self._problems)

    def _offer(self, engine: Any) -> None:
        """Offer the specs, losses and optimizers ``engine`` can train together."""
        self._set_options(self.model, model_choices(engine))
        self._set_options(self.loss, loss_choices(engine))
        usable = optimizer_choices(engine, self._kind_spec(), *self._loss_phi())
        self._set_options(self.optimizer, ["auto", *usable])

    @staticmethod
    def _set_options(dropdown: widgets.Dropdown, options: list[Any]) -> None:
        """New options, keeping the value where it is still offered (else the first)."""
        if list(dropdown.options) != options:
            keep = dropdown.value
            dropdown.options = options
            values = [o[1] if isinstance(o, tuple) else o for o in options]
            dropdown.value = keep if keep in values else values[0]

    def _on_options(self) -> None:
        self.hidden.disabled = self.model.value != "mlp"
        mode = self.effective_optimizer()
        full_batch = mode in DETERMINISTIC
        self.lr.disabled = full_batch
        self.batch_size.disabled = full_batch
        self.epochs.description = "max iterations" if full_batch else "epochs"
        if mode != self._mode:
            self.epochs.value = DEFAULT_EPOCHS[mode]
        self._mode = mode

    def _check(self, *, user: bool) -> None:
        """Show :meth:`problems` beside the fields; a user's valid input clears the error
        box, an invalid one replaces what it shows."""
        self._problems = self.problems()
        for name, view in self.field_errors.items():
            message = self._problems.get(name)
            view.value = "" if message is None else _field_error_html(message)
        first = next(iter(self._problems.values()), None)
        self.train_button.tooltip = "Train the model" if first is None else first
        if user and not self._problems:
            self._clear_error()
        elif user and self.last_error is not None:
            self._show_error(self._problem_error())

    def _on_train(self, _button: Any) -> None:
        if self.running:
            return
        self._clear_error()
        try:
            if self.state.train is None:
                msg = "The Train panel needs training data: TrainPanel(train, val)."
                raise BinomlabError(msg)
            self._check(user=False)
            if self._problems:  # the button is disabled; a click from code is refused too
                raise self._problem_error()
            options = self.fit_options()
        except Exception as err:
            self._show_error(err)
            return
        self._stop.clear()
        self.state.history = []
        self.progress.max = options["epochs"]
        self.progress.value = 0
        self.progress.description = "epoch 0"
        self.progress.bar_style = "info"
        self.curve_view.value = curve_svg([], epochs=options["epochs"])
        self.status.value = f"Training {options['model']} on {options['backend']}…"
        self.train_button.disabled = True
        self.stop_button.disabled = False
        self._drawn = 0.0
        thread = threading.Thread(
            target=self._run, args=(options,), name="binomlab-train", daemon=True
        )
        self.state.thread = thread
        thread.start()

    def _on_stop(self, _button: Any) -> None:
        if self.running:
            self._stop.set()
            self.status.value = "Stopping after this epoch…"

    # -- the training thread -----------------------------------------------------------------

    def _on_epoch(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        self.state.history.append(
            {
                "epoch": int(epoch),
                "train_nll": metrics["train_nll"],
                "val_nll": metrics.get("val_nll"),
            }
        )
        now = time.monotonic()
        if now - self._drawn >= REDRAW_SECONDS or epoch >= self.progress.max:
            self._drawn = now
            self._draw(epoch)
        return not self._stop.is_set()

    def _draw(self, epoch: int) -> None:
        self.progress.value = min(epoch, self.progress.max)
        self.progress.description = f"epoch {epoch}"
        self.curve_view.value = curve_svg(self.state.history, epochs=self.progress.max)

    def _run(self, options: dict[str, Any]) -> None:
        name = f"{options['model']}/{options['backend']}"
        if options.get("loss", "binomial") != "binomial":
            name += f"/{options['loss']}"
        if "phi" in options:
            name += f"{PHI_SEPARATOR}{options['phi']}"
        run: dict[str, Any] = {
            "name": None,
            "backend": options["backend"],
            "spec": str(options["model"]),
            "epochs": 0,
            "stop_reason": None,
            "seconds": None,
            "error": None,
        }
        try:
            fitted = fit(self.state.train, callbacks=[self._on_epoch, *self.callbacks], **options)
            self._draw(fitted.epochs_)
            self.last_model = fitted
            # the leaderboard and the other panels update before the bar says "done"
            self.last_name = run["name"] = self.state.add_model(name, fitted)
        except BaseException as err:
            run["error"] = f"{type(err).__name__}: {err}"
            if self.state.history:
                self._draw(self.state.history[-1]["epoch"])
            self.progress.bar_style = "danger"
            self.status.value = f"Training {name} failed."
            self._show_error(err)
        else:
            run.update(
                epochs=fitted.epochs_, stop_reason=fitted.stop_reason, seconds=fitted.seconds_
            )
            kept = fitted.kept_epoch()  # the epoch whose weights the model has
            has_val = kept is not None and kept["val_nll"] is not None
            nll = f", epoch {kept['epoch']} kept: val NLL {kept['val_nll']:.5f}" if has_val else ""
            if fitted.phi_ is not None:  # the beta-binomial's concentration and ρ = 1/(1 + φ)
                nll += f", φ = {fitted.phi_:.4g} (ρ = {1 / (1 + fitted.phi_):.4f})"
            elif fitted.phi_model == "network":  # ρ varies by group: its range on the data
                rho = 1 / (1 + fitted.predict_phi(self.state.train))
                nll += f", ρ from {rho.min():.4f} to {rho.max():.4f}"
            unit = "iteration" if fitted.config.deterministic else "epoch"
            self.status.value = (
                f"<b>{self.last_name}</b>: {_plural(fitted.epochs_, unit)}, stopped: "
                f"{fitted.stop_reason}{nll} ({fitted.seconds_:.1f} s)."
            )
            if fitted.stop_reason in FINISHED:
                self.progress.value = self.progress.max
                self.progress.bar_style = "success"
            else:
                self.progress.bar_style = "warning"
        finally:
            self.state.runs.append(run)
            self.train_button.disabled = bool(self._problems)
            self.stop_button.disabled = True
