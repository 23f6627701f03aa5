"""The Lightning backend's own options and pieces: strategies it refuses, the options that reach
the Trainer, its module in a plain Trainer, and its batches.

The rules every plugin keeps are tested for Lightning in tests/test_plugin_backends.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("binomlab_lightning")

import lightning as L  # noqa: E402

from binomlab.backends.protocol import TrainConfig, TrainData  # noqa: E402
from binomlab.errors import BinomlabError  # noqa: E402
from binomlab.specs import MLP  # noqa: E402
from binomlab.testing import Recorder, synthetic_train_data  # noqa: E402
from binomlab_lightning import BinomialModule, LightningBackend  # noqa: E402
from binomlab_lightning.data import GroupBatches, GroupTensors  # noqa: E402


def train(data, val=None, spec=None, *, callback=None, **config):
    return LightningBackend().fit(
        data, val, spec or MLP(hidden=(8,)), TrainConfig(**config), callback or Recorder()
    )


# -- options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["ddp_spawn", "ddp_notebook"])
def test_strategies_that_train_in_other_processes_are_refused(data, strategy) -> None:
    with pytest.raises(BinomlabError, match="strategy='ddp'"):
        train(data, options={"strategy": strategy, "devices": 2, "accelerator": "cpu"})


def test_trainer_options_lightning_refuses_are_binomlab_errors(data) -> None:
    for options, match in (
        ({"strategy": "nonsense"}, r"Lightning refused .*'strategy': 'nonsense'"),
        ({"precision": "8-true"}, r"Lightning refused .*'precision': '8-true'"),
        ({"devices": "two"}, r"Lightning refused .*'devices': 'two'"),
    ):
        with pytest.raises(BinomlabError, match=match):
            train(data, epochs=1, options={"accelerator": "cpu", **options})


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("logger", {"a": 1}, "True, False, a Lightning Logger or a list of them"),
        ("logger", "true", "True, False, a Lightning Logger"),
        ("logger", [False], "a list of them"),
        ("enable_checkpointing", "no", "True or False"),
        ("enable_checkpointing", 1, "True or False"),
        ("default_root_dir", 5, "a path or None"),
        ("devices", 1.5, "an int, a str"),
        ("devices", [0, "1"], "a list of device indices"),
        ("precision", 16.0, "a str"),
        ("accelerator", 3, "a str or a Lightning Accelerator"),
        ("strategy", {"name": "ddp"}, "a str or a Lightning Strategy"),
    ],
)
def test_trainer_options_of_a_type_the_trainer_does_not_take_are_refused(
    data, name, value, expected
) -> None:
    # a string enable_checkpointing would be read as true, a dict logger fails inside fit
    with pytest.raises(BinomlabError, match=rf"option {name} must be .*{re.escape(expected)}"):
        train(data, epochs=1, options={name: value})


def test_trainer_options_take_lightnings_objects_and_its_loggers_get_the_epochs(
    data, val, tmp_path
) -> None:
    import polars as pl
    from lightning.pytorch.accelerators import CPUAccelerator
    from lightning.pytorch.loggers import CSVLogger

    recorder = Recorder()
    train(
        data,
        val,
        epochs=3,
        callback=recorder,
        options={
            "accelerator": CPUAccelerator(),
            "logger": [CSVLogger(tmp_path, name="run")],
            "default_root_dir": tmp_path,
            "enable_checkpointing": False,
        },
    )
    (path,) = tmp_path.rglob("metrics.csv")
    logged = pl.read_csv(path).sort("step")
    # the core's exact epoch NLLs, as the progress callback got them, one row per epoch
    assert logged["step"].to_list() == [1, 2, 3]
    for name in ("train_nll", "val_nll"):
        np.testing.assert_allclose(logged[name].to_numpy(), recorder.column(name), rtol=1e-6)


def test_lbfgs_refuses_trainer_options_it_would_not_use(data) -> None:
    from binomlab.specs import Logistic

    with pytest.raises(BinomlabError, match=r"Trainer option\(s\) \['devices', 'strategy'\]"):
        train(data, spec=Logistic(), optimizer="lbfgs", options={"strategy": "ddp", "devices": 2})
    with pytest.raises(BinomlabError, match=r"accelerator to be one of .*'tpu'"):
        train(data, spec=Logistic(), optimizer="lbfgs", options={"accelerator": "tpu"})
    fitted = train(data, spec=Logistic(), optimizer="lbfgs", options={"accelerator": "cpu"})
    assert fitted.stop_reason == "converged"


def test_options_reach_the_trainer(data, tmp_path) -> None:
    train(
        data,
        epochs=2,
        options={
            "accelerator": "cpu",
            "devices": 1,
            "precision": "64-true",
            "default_root_dir": str(tmp_path),
            "enable_checkpointing": True,
            "logger": False,
        },
    )
    (checkpoint,) = tmp_path.rglob("*.ckpt")  # enable_checkpointing=True writes one
    # the hyperparameters rebuild the network: no pickled module needed
    module = BinomialModule.load_from_checkpoint(checkpoint, weights_only=True)
    assert module.hparams.input_dim == 4 and module.hparams.optimizer == "adam"


# -- the pieces, as a Lightning user would use them ----------------------------------------------


@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")
def test_module_in_a_plain_trainer(data: TrainData, val: TrainData) -> None:
    """The module trains in a Lightning user's own Trainer, and EpochEnd hands each epoch's end
    to any ``end_epoch() -> stop?`` (here the core's rules would be; a counter stops at 2)."""
    from binomlab.nll import grouped_nll
    from binomlab_lightning import LightningNetwork
    from binomlab_lightning.session import EpochEnd

    module = BinomialModule(spec=MLP(hidden=(4,)).to_dict(), input_dim=4, lr=0.05, batch_size=64)
    assert module.hparams.spec["hidden"] == [4]
    module.attach(GroupTensors.from_train_data(data))
    network = LightningNetwork(module.net, MLP(hidden=(4,)), 4)
    before = grouped_nll(network.predict_logits(val.X), val.k, val.n)
    ends: list[int] = []
    trainer = L.Trainer(
        max_epochs=10,
        callbacks=[EpochEnd(lambda: ends.append(1) or len(ends) >= 2)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module)
    assert len(ends) == 2 and trainer.current_epoch == 2
    assert grouped_nll(network.predict_logits(val.X), val.k, val.n) < before


def test_batches_cover_every_group_once_per_epoch(data: TrainData) -> None:
    tensors = GroupTensors.from_train_data(data).to("cpu", torch.float64)
    batches = GroupBatches(tensors, batch_size=64, shuffle=True, seed=3)
    assert len(batches) == 4
    first = torch.cat([X for X, *_ in batches])
    second = torch.cat([X for X, *_ in batches])
    key = lambda X: X[:, 0].sort().values  # noqa: E731
    torch.testing.assert_close(key(first), key(tensors.X))
    assert not torch.equal(first, second), "a new order every epoch"
    # two processes split every batch; each knows the whole batch's trials
    shards = [
        GroupBatches(tensors, batch_size=64, shuffle=True, seed=3, rank=r, world_size=2)
        for r in (0, 1)
    ]
    for (X0, _, n0, t0), (X1, _, n1, t1) in zip(*shards, strict=True):
        assert t0 == t1 == n0.sum() + n1.sum()
        assert abs(len(X0) - len(X1)) <= 1


@pytest.mark.parametrize(
    ("optimizer", "weight_decay"), [("adam", 0.0), ("adam", 0.1), ("adamw", 0.1)]
)
def test_adam_is_fused_and_takes_the_steps_of_torchs_plain_loop(optimizer, weight_decay) -> None:
    import torch

    from binomlab_lightning import binomial_nll_with_logits

    module = BinomialModule(
        spec=MLP(hidden=(4,)).to_dict(), input_dim=4, optimizer=optimizer, weight_decay=weight_decay
    )
    fused = module.configure_optimizers()
    assert fused.defaults["fused"] is True
    # the same parameter groups, on a copy of the network, with torch's per-tensor loop
    twin = BinomialModule(spec=MLP(hidden=(4,)).to_dict(), input_dim=4).net
    twin.load_state_dict(module.net.state_dict())
    position = {id(p): i for i, p in enumerate(module.net.parameters())}
    twin_params = list(twin.parameters())
    groups = [
        {
            "params": [twin_params[position[id(p)]] for p in g["params"]],
            "weight_decay": g["weight_decay"],
        }
        for g in fused.param_groups
    ]
    plain = type(fused)(groups, lr=fused.defaults["lr"], foreach=False)
    data = synthetic_train_data(64, 4)
    X, k, n = (torch.as_tensor(a, dtype=torch.float32) for a in (data.X, data.k, data.n))
    start = [p.detach().clone() for p in module.net.parameters()]
    for net, opt in ((module.net, fused), (twin, plain)):
        for _ in range(5):
            opt.zero_grad()
            binomial_nll_with_logits(net(X), k, n).backward()
            opt.step()
    for a, b, before in zip(module.net.parameters(), twin.parameters(), start, strict=True):
        assert (a - before).abs().max() > 1e-3  # five steps of lr 0.01 moved every tensor
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
