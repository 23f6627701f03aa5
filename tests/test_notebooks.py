"""Every notebook runs top to bottom (nbclient, the venv's kernel) with a small epoch count.

The cell tagged ``parameters`` sets the defaults; a cell injected after it sets ``EPOCHS = 2``
and ``QUICK = True``, as papermill would. A cell that raises fails the test.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import binomlab as bl

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
INJECTED = "# injected by tests/test_notebooks.py\nEPOCHS = 2\nQUICK = True"
PLUGINS = [b for b in bl.backends.available() if b != "reference"]
NETWORKS = [b for b in PLUGINS if "mlp" in bl.backends.get(b).specs]
TREES = [b for b in PLUGINS if "gbdt" in bl.backends.get(b).specs]


def _outputs_text(nb) -> str:
    """All text a notebook printed or displayed (stdout, text/plain, text/html)."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            data = output.get("data", {})
            parts.append(data.get("text/plain", ""))
            parts.append(data.get("text/html", ""))
    return "\n".join(parts)


def execute(path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch):
    """Run the notebook at ``path`` in ``workdir`` with the injected parameters; return it."""
    nb = nbformat.read(path, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert tagged, f"{path.name} has no code cell tagged 'parameters'"
    index = tagged[0]
    source = INJECTED
    if "OUT = " in nb.cells[index].source:  # exported files go to the test's folder
        source += '\nOUT = "exported-models"'
    injected = nbformat.v4.new_code_cell(source)
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, injected)
    # the kernel inherits the environment: let it use its inline backend, not CI's Agg
    monkeypatch.delenv("MPLBACKEND", raising=False)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",  # jupyter_client starts it with this interpreter (sys.executable)
        timeout=300,
        # after a cell's reply, nbclient waits iopub_timeout (default 4 s) for its outputs and
        # then drops the rest silently: on a loaded CI machine that lost a printed line once.
        # Wait long, and fail loudly rather than assert on missing output.
        iopub_timeout=120,
        raise_on_iopub_timeout=True,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if path.stem.startswith("05") and not any(
        "beta-binomial" in bl.backends.get(b).losses for b in PLUGINS
    ):
        pytest.skip(
            "no installed backend trains loss='beta-binomial' (pip install binomlab-lightning)"
        )
    start = time.perf_counter()
    nb = execute(path, tmp_path, monkeypatch)
    seconds = time.perf_counter() - start
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors == []
    text = _outputs_text(nb)
    if path.stem.startswith("01"):
        assert "336,776 raw rows" in text
        assert "DuckDB's GROUP BY == Polars' group_by: True" in text
        assert "327,346 trials" in text
    elif path.stem.startswith("02"):
        for backend in NETWORKS:  # every installed plugin is trained and on the leaderboard
            assert f"logistic/{backend}" in text
            assert f"mlp:32,16/{backend}" in text
        for backend in TREES:
            assert f"/{backend}" in text and "gbdt:" in text
        widget_views = [
            o for c in nb.cells for o in c.get("outputs", [])
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        ]  # fmt: skip
        assert len(widget_views) == 1  # the Lab
    elif path.stem.startswith("03"):
        assert "dispersion" in text
    elif path.stem.startswith("04"):
        assert "max |Δp|" in text
        exported = sorted(p.name for p in (tmp_path / "exported-models").iterdir())
        assert exported == sorted(
            f"{spec}-{backend}" for backend in NETWORKS or ["reference"]
            for spec in (("logistic", "mlp") if backend != "reference" else ("logistic",))
        )  # fmt: skip
    elif path.stem.startswith("05"):
        assert "coverage of the test days' counts: binomial" in text
        assert "phi = " in text and "rho = " in text
        assert "served: loss=beta-binomial" in text
    assert seconds < 120, f"{path.name} took {seconds:.0f}s"


def test_notebooks_are_committed_without_outputs() -> None:
    assert {
        "01_group_and_split.ipynb",
        "02_compare_backends.ipynb",
        "03_calibration.ipynb",
        "04_export_and_serve.ipynb",
        "05_overdispersion.ipynb",
    } <= {p.name for p in NOTEBOOKS}
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(c["outputs"] == [] and c["execution_count"] is None for c in code), path.name
        tagged = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
        assert len(tagged) == 1 and "EPOCHS = " in "".join(tagged[0]["source"]), path.name
        assert code[0] is tagged[0], path.name
