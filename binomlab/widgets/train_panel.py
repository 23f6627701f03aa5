"""The Train tab: pick a backend, a model and its training options; train in the background."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as widgets

from binomlab import backends
from binomlab.backends.protocol import DEFAULT_EPOCHS, DETERMINISTIC, default_optimizer
from binomlab.errors import BinomlabError
from binomlab.grouped import Grouped
from binomlab.specs import MLP, Logistic, ModelSpec, parse_spec
from binomlab.training import Fitted, fit
from binomlab.widgets._render import curve_svg
from binomlab.widgets.panel import Panel
from binomlab.widgets.state import LabState

__all__ = ["TrainPanel"]

REDRAW_SECONDS = 0.1  # the curve is redrawn at most this often (and after the last epoch)
FINISHED = ("completed", "converged", "early_stopping", "max_iter", "stalled")
PHI_SEPARATOR = "/"
"""Joins a loss and its φ model in a choice's value: ``"beta-binomial/network"``."""


def loss_choices(engine: Any) -> list[tuple[str, str]]:
    """``(label, value)`` pairs for the loss dropdown: the backend's losses, and the
    beta-binomial with φ from the network when the backend can learn it."""
    choices = [(loss, loss) for loss in getattr(engine, "losses", ("binomial",))]
    if "beta-binomial" in dict(choices) and "network" in getattr(engine, "phi_models", ()):
        choices.append(("beta-binomial, φ per group", f"beta-binomial{PHI_SEPARATOR}network"))
    return choices


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
        The input widgets; ``loss`` offers the losses the backend trains. ``epochs`` is the
        number of epochs for Adam/AdamW and the maximum number of iterations for L-BFGS
        (which stops earlier once converged).
    train_button, stop_button
        Train starts a run (ignored while one runs); Stop ends it after the current epoch,
        keeping the best weights.
    progress
        ``IntProgress`` whose ``max`` is the epoch (or iteration) budget.
    curve
        The per-epoch rows ``{"epoch", "train_nll", "val_nll"}`` of the current run.
    last_model, last_name
        The last model trained and its name in the state's models.
    last_error
        The exception of the last failed run (also shown in the panel), or None.
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
            options=[("logistic regression", "logistic"), ("MLP", "mlp")],
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
        self.epochs = widgets.BoundedIntText(
            value=DEFAULT_EPOCHS["adam"],
            min=1,
            max=100_000,
            description="epochs",
            style=style,
            layout=wide,
        )
        self.lr = widgets.BoundedFloatText(
            value=0.01,
            min=1e-6,
            max=10.0,
            step=0.001,
            description="learning rate",
            style=style,
            layout=wide,
        )
        self.batch_size = widgets.BoundedIntText(
            value=1024, min=1, max=10**9, description="batch size", style=style, layout=wide
        )
        self.seed = widgets.IntText(value=0, description="seed", style=style, layout=wide)
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

        self.backend.observe(self._on_backend, names="value")
        self.model.observe(self._on_options, names="value")
        self.optimizer.observe(self._on_options, names="value")
        self.train_button.on_click(self._on_train)
        self.stop_button.on_click(self._on_stop)
        self._on_backend(None)

        form = widgets.VBox(
            [
                self.backend,
                self.model,
                self.hidden,
                self.loss,
                self.optimizer,
                self.epochs,
                self.lr,
                self.batch_size,
                self.seed,
            ]
        )
        run = widgets.VBox(
            [
                widgets.HBox([self.train_button, self.stop_button]),
                self.progress,
                self.status,
                self.curve_view,
            ]
        )
        self.children = (widgets.HBox([form, run]), self.error)

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

    def effective_optimizer(self) -> str:
        """The optimizer ``bl.fit`` will use with the current choices."""
        engine = self._engine(self.backend.value)
        if self.optimizer.value != "auto":
            return self.optimizer.value
        spec = Logistic() if self.model.value == "logistic" else MLP()
        loss = self.loss.value.partition(PHI_SEPARATOR)[0]
        return default_optimizer(engine, spec, loss)

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

    def fit_options(self) -> dict[str, Any]:
        """The keyword arguments of ``bl.fit`` for the current choices (without callbacks)."""
        full_batch = self.effective_optimizer() in DETERMINISTIC
        options: dict[str, Any] = {
            "model": self.spec(),
            "backend": self.backend.value,
            "val": self.state.val,
            "epochs": int(self.epochs.value),
            "optimizer": None if self.optimizer.value == "auto" else self.optimizer.value,
            "seed": int(self.seed.value),
        }
        if self.loss.value != "binomial":
            options["loss"], _, phi = self.loss.value.partition(PHI_SEPARATOR)
            if phi:
                options["phi"] = phi
        if not full_batch:
            options["lr"] = float(self.lr.value)
            options["batch_size"] = int(self.batch_size.value)
        return options

    # -- events ------------------------------------------------------------------------------

    def _on_backend(self, _change: Any) -> None:
        try:
            engine = self._engine(self.backend.value)
        except Exception as err:  # a plugin that fails to build: show it, keep the panel
            self._show_error(err)
            return
        keep = self.optimizer.value
        self.optimizer.options = ["auto", *engine.optimizers]
        self.optimizer.value = keep if keep in self.optimizer.options else "auto"
        keep = self.loss.value
        self.loss.options = loss_choices(engine)
        values = [value for _, value in self.loss.options]
        self.loss.value = keep if keep in values else values[0]
        self._on_options(None)

    def _on_options(self, _change: Any) -> None:
        self.hidden.disabled = self.model.value != "mlp"
        mode = self.effective_optimizer()
        full_batch = mode in DETERMINISTIC
        self.lr.disabled = full_batch
        self.batch_size.disabled = full_batch
        self.epochs.description = "max iterations" if full_batch else "epochs"
        if mode != self._mode:
            self.epochs.value = DEFAULT_EPOCHS[mode]
        self._mode = mode

    def _on_train(self, _button: Any) -> None:
        if self.running:
            return
        self._clear_error()
        try:
            if self.state.train is None:
                msg = "The Train panel needs training data: TrainPanel(train, val)."
                raise BinomlabError(msg)
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
            self.status.value = (
                f"<b>{self.last_name}</b>: {fitted.epochs_} epochs, stopped: "
                f"{fitted.stop_reason}{nll} ({fitted.seconds_:.1f} s)."
            )
            if fitted.stop_reason in FINISHED:
                self.progress.value = self.progress.max
                self.progress.bar_style = "success"
            else:
                self.progress.bar_style = "warning"
        finally:
            self.state.runs.append(run)
            self.train_button.disabled = False
            self.stop_button.disabled = True
