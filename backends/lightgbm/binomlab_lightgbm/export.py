"""The boosted trees as ONNX: one ``ai.onnx.ml`` ``TreeEnsembleRegressor`` written from
LightGBM's ``dump_model``, whose output is the logit.

The input is the encoder's float32 matrix ``[batch, d]`` as binomlab serves every model (in the
index form: a code per feature with levels). Every split of the dump becomes nodes:

* a numeric split ``x <= threshold`` (left) is a ``BRANCH_LEQ`` node, the threshold kept in
  float64 (``nodes_values_as_tensor``; the input is cast to float64 first, since
  onnxruntime compares in the input's type), as LightGBM compares;
* a categorical split (left: the levels of a set) is a chain of ``BRANCH_EQ`` nodes, one per
  level of the set (``code == level + first``), each sending its matches to the same left
  subtree and the rest on down the chain to the right subtree — what onnxruntime runs as a
  set-membership test.

Leaf values (with LightGBM's shrinkage already in them) are summed in float64
(``target_weights_as_tensor``) on top of ``base_values = [base logit]``, so the ONNX logits
equal ``Booster.predict(raw_score=True) + base`` to float rounding. No converter package and
no pickle are involved.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from binomlab_lightgbm.data import Columns

__all__ = ["ML_OPSET", "OPSET", "ensemble_model", "export_onnx"]

OPSET = 17
"""The default-domain opset the model declares."""
ML_OPSET = 3
"""``ai.onnx.ml`` version 3: the first with float64 thresholds and leaf weights."""


class _Tree:
    """The node arrays of one tree, filled depth-first."""

    def __init__(self, tree_id: int, columns: Columns) -> None:
        self.tree_id = tree_id
        self.offsets = dict(zip(columns.categorical, columns.offsets, strict=True))
        self.nodes: list[dict[str, Any]] = []
        self.leaves: list[tuple[int, float]] = []

    def _new(self, **fields: Any) -> int:
        self.nodes.append({"feature": 0, "mode": "LEAF", "value": 0.0, "true": 0, "false": 0})
        self.nodes[-1].update(fields)
        return len(self.nodes) - 1

    def add(self, node: Mapping[str, Any]) -> int:
        """Write ``node`` (a dump's ``tree_structure`` or a child of one); return its id."""
        if "split_feature" not in node:
            leaf = self._new()
            self.leaves.append((leaf, float(node["leaf_value"])))
            return leaf
        feature = int(node["split_feature"])
        if node["decision_type"] == "<=":
            if node.get("missing_type", "None") != "None":
                msg = f"A split with missing_type {node['missing_type']!r} cannot be exported."
                raise ValueError(msg)
            own = self._new(feature=feature, mode="BRANCH_LEQ", value=float(node["threshold"]))
            self.nodes[own]["true"] = self.add(node["left_child"])
            self.nodes[own]["false"] = self.add(node["right_child"])
            return own
        if node["decision_type"] != "==":
            msg = f"Unknown LightGBM decision type {node['decision_type']!r}."
            raise ValueError(msg)
        offset = self.offsets.get(feature)
        if offset is None:
            msg = f"A categorical split on column {feature}, which is not a category column."
            raise ValueError(msg)
        levels = [int(v) for v in str(node["threshold"]).split("||")]
        chain = [
            self._new(feature=feature, mode="BRANCH_EQ", value=float(level + offset))
            for level in levels
        ]
        left = self.add(node["left_child"])
        right = self.add(node["right_child"])
        for position, own in enumerate(chain):
            self.nodes[own]["true"] = left
            self.nodes[own]["false"] = chain[position + 1] if position + 1 < len(chain) else right
        return chain[0]


def ensemble_model(dump: Mapping[str, Any], columns: Columns, base_logit: float) -> onnx.ModelProto:
    """The ONNX model of a LightGBM ``dump_model()`` on the encoded matrix of ``columns``.

    Raises
    ------
    ValueError
        A split the export cannot write (a missing-value rule; binomlab trains none).
    """
    attributes: dict[str, list] = {
        k: []
        for k in (
            "nodes_treeids",
            "nodes_nodeids",
            "nodes_featureids",
            "nodes_modes",
            "nodes_truenodeids",
            "nodes_falsenodeids",
            "nodes_missing_value_tracks_true",
            "nodes_hitrates",
            "target_treeids",
            "target_nodeids",
            "target_ids",
        )
    }
    values: list[float] = []
    weights: list[float] = []
    trees = list(dump["tree_info"]) or [{"tree_structure": {"leaf_value": 0.0}}]
    for tree_id, info in enumerate(trees):
        tree = _Tree(tree_id, columns)
        tree.add(info["tree_structure"])
        for node_id, node in enumerate(tree.nodes):
            attributes["nodes_treeids"].append(tree_id)
            attributes["nodes_nodeids"].append(node_id)
            attributes["nodes_featureids"].append(node["feature"])
            attributes["nodes_modes"].append(node["mode"])
            attributes["nodes_truenodeids"].append(node["true"])
            attributes["nodes_falsenodeids"].append(node["false"])
            attributes["nodes_missing_value_tracks_true"].append(0)
            attributes["nodes_hitrates"].append(1.0)
            values.append(node["value"])
        for leaf, weight in tree.leaves:
            attributes["target_treeids"].append(tree_id)
            attributes["target_nodeids"].append(leaf)
            attributes["target_ids"].append(0)
            weights.append(weight)
    cast = helper.make_node("Cast", ["X"], ["X64"], to=TensorProto.DOUBLE)
    node = helper.make_node(
        "TreeEnsembleRegressor",
        ["X64"],
        ["logit"],
        domain="ai.onnx.ml",
        n_targets=1,
        aggregate_function="SUM",
        post_transform="NONE",
        base_values_as_tensor=numpy_helper.from_array(np.array([base_logit], np.float64)),
        nodes_values_as_tensor=numpy_helper.from_array(np.asarray(values, np.float64)),
        target_weights_as_tensor=numpy_helper.from_array(np.asarray(weights, np.float64)),
        **attributes,
    )
    graph = helper.make_graph(
        [cast, node],
        "binomlab_lightgbm",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, columns.width])],
        [helper.make_tensor_value_info("logit", TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        producer_name="binomlab-lightgbm",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def export_onnx(
    dump: Mapping[str, Any], columns: Columns, base_logit: float, path: str | Path
) -> None:
    """Write :func:`ensemble_model` to ``path``."""
    onnx.save(ensemble_model(dump, columns, base_logit), str(path))
