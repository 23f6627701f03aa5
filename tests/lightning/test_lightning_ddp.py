"""strategy="ddp" on two CPU processes (gloo) trains exactly like one process.

Lightning's ``ddp`` launcher re-runs the calling script in every extra process, so the DDP
fits run in a script of their own, as they would for a user; the single-process fits run the
same code in this process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("binomlab_lightning")

COMMON = textwrap.dedent(
    """
    import numpy as np
    from binomlab.backends.protocol import TrainConfig, TrainData
    from binomlab.specs import MLP, Logistic
    from binomlab_lightning import LightningBackend

    def synthetic():
        rng = np.random.default_rng(0)
        X = rng.normal(size=(203, 4)).astype(np.float32)
        n = rng.integers(1, 40, 203).astype(np.float64)
        z = X @ np.array([0.5, -1.0, 0.25, 0.0]) - 0.3
        k = rng.binomial(n.astype(int), 1 / (1 + np.exp(-z))).astype(np.float64)
        return TrainData(X, k, n)

    def run_all(**options):
        accelerator = {"accelerator": options.get("accelerator", "auto")}
        cases = {
            "adam": (MLP(hidden=(8,)), TrainConfig(epochs=4, batch_size=50, options=options)),
            # L-BFGS runs in each process without a Trainer: only the accelerator applies
            "lbfgs": (
                Logistic(),
                TrainConfig(optimizer="lbfgs", options=accelerator),
            ),
        }
        data, results = synthetic(), {}
        for name, (spec, config) in cases.items():
            history = []
            network = LightningBackend().fit(
                data, None, spec, config, lambda epoch, m: history.append(m["train_nll"])
            )
            results[name] = {
                "history": history,
                "logits": network.predict_logits(data.X).tolist(),
                "stop_reason": network.stop_reason,
            }
        return results
    """
)
SCRIPT = COMMON + textwrap.dedent(
    """
    import json, os

    results = run_all(strategy="ddp", devices=2, accelerator="cpu")
    if os.environ.get("LOCAL_RANK", "0") == "0":
        import torch.distributed as dist

        world_size = dist.get_world_size() if dist.is_initialized() else 1
        print(json.dumps({**results, "world_size": world_size}))
    """
)


@pytest.mark.slow
def test_ddp_two_processes_equal_one(tmp_path) -> None:
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = json.loads(done.stdout.strip().splitlines()[-1])
    assert ddp["world_size"] == 2
    namespace: dict = {}
    exec(COMMON, namespace)
    single = namespace["run_all"]()
    for name in ("adam", "lbfgs"):
        assert ddp[name]["stop_reason"] == single[name]["stop_reason"], name
        assert len(ddp[name]["history"]) == len(single[name]["history"]), name
        np.testing.assert_allclose(ddp[name]["history"], single[name]["history"], rtol=1e-6)
        np.testing.assert_allclose(ddp[name]["logits"], single[name]["logits"], atol=1e-5)
    assert single["lbfgs"]["stop_reason"] == "converged"
    # nothing written next to the script: no lightning_logs, no checkpoints
    assert [p.name for p in tmp_path.iterdir()] == ["train_ddp.py"]
