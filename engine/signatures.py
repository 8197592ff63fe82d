"""Named signatures of a saved graph: recorded at save time, checked and run at load time.

A signature maps input and output keys to graph nodes with their dtypes and shapes (TF
Serving's `serving_default` style); `SavedGraph.predict` feeds inputs by key after checking
them against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import SavedGraphError, SignatureError
from engine.graph import Graph, Node, Placeholder
from engine.session import Session

__all__ = ["SavedGraph", "SignatureError", "as_node", "signature_records"]


@dataclass
class SavedGraph:
    """A loaded saved graph: the graph, a Session holding its variables, and its signatures."""

    path: str | Path  # a local directory, or the URI it was read from
    graph: Graph
    session: Session
    signatures: dict
    assets: dict[str, bytes] = field(default_factory=dict)

    def node(self, name: str) -> Node:
        """The node called `name` in the loaded graph."""
        return self.graph.get_node(name)

    def predict(self, signature_name: str, inputs: Mapping) -> dict[str, np.ndarray]:
        """Run signature `signature_name` on `inputs` (key -> array); returns key -> numpy array."""
        signature = self.signatures.get(signature_name)
        if signature is None:
            raise SignatureError(
                f"no signature {signature_name!r}; this model has {sorted(self.signatures)}"
            )
        missing = sorted(set(signature["inputs"]) - set(inputs))
        unexpected = sorted(set(inputs) - set(signature["inputs"]))
        if missing or unexpected:
            raise SignatureError(
                f"signature {signature_name!r} takes inputs {sorted(signature['inputs'])}; "
                f"missing {missing}, unexpected {unexpected}"
            )
        feed = {
            self.graph.get_node(spec["name"]): _signature_input(key, spec, inputs[key])
            for key, spec in signature["inputs"].items()
        }
        fetch = {
            key: self.graph.get_node(spec["name"]) for key, spec in signature["outputs"].items()
        }
        return {key: np.asarray(value) for key, value in self.session.run(fetch, feed).items()}


def _signature_input(key: str, spec: dict, value) -> np.ndarray:
    arr = np.asarray(value)
    want = np.dtype(spec["dtype"])
    if arr.dtype != want and arr.size:
        int_to_int = arr.dtype.kind in "iu" and want.kind in "iu"
        if int_to_int:
            info = np.iinfo(want)
            if arr.min() < info.min or arr.max() > info.max:
                raise SignatureError(f"input {key!r}: values outside the {want} range")
        elif not (want.kind == "f" and arr.dtype.kind in "iuf") and not (
            want.kind == "b" and arr.dtype.kind == "b"
        ):
            raise SignatureError(f"input {key!r} must be {want}, got {arr.dtype}")
    arr = arr.astype(want, copy=False)
    shape = spec["shape"]
    if shape is not None and (
        arr.ndim != len(shape)
        or any(d not in (-1, n) for d, n in zip(shape, arr.shape, strict=True))
    ):
        raise SignatureError(f"input {key!r} must have shape {shape} (-1: any), got {arr.shape}")
    return arr


# ---- save ---------------------------------------------------------------------------------


def as_node(graph: Graph, ref, where: str) -> Node:
    """`ref` (a node or a node name) as a node of `graph`; `where` prefixes the error."""
    if isinstance(ref, str):
        try:
            return graph.get_node(ref)
        except KeyError as exc:
            raise SavedGraphError(f"{where}: {exc.args[0]}") from None
    if not isinstance(ref, Node) or ref.graph is not graph:
        raise SavedGraphError(f"{where}: {ref!r} is not a node of the session's graph")
    return ref


def _probe_outputs(session: Session, inputs: dict[str, Placeholder], outputs: dict) -> dict:
    """Each output's dtype/shape from runs on zero batches of 1 and 2 rows (-1: differs)."""
    runs = []
    for batch in (1, 2):
        feed = {}
        for node in inputs.values():
            if node.shape.rank is None or node.dtype is None:
                raise ValueError(f"input {node.name!r} has no static dtype/shape")
            feed[node] = np.zeros([batch if d is None else d for d in node.shape], node.dtype)
        runs.append({k: np.asarray(v) for k, v in session.run(outputs, feed).items()})
    return {
        key: {
            "dtype": runs[0][key].dtype.name,
            "shape": [
                a if a == b else -1
                for a, b in zip(runs[0][key].shape, runs[1][key].shape, strict=True)
            ],
        }
        for key in outputs
    }


def signature_records(session: Session, signatures: Mapping) -> tuple[dict, list[Node]]:
    graph = session.graph
    records, fetches = {}, []
    if not signatures:
        raise SavedGraphError("save needs at least one signature (e.g. 'serving_default')")
    for sig_name, sig in signatures.items():
        where = f"signature {sig_name!r}"
        if set(sig) - {"inputs", "outputs"} or "outputs" not in sig:
            raise SavedGraphError(f"{where} must be {{'inputs': {{...}}, 'outputs': {{...}}}}")
        inputs = {
            k: as_node(graph, v, f"{where} input {k!r}") for k, v in sig.get("inputs", {}).items()
        }
        in_records = {}
        for key, node in inputs.items():
            if not isinstance(node, Placeholder) or node.dtype is None:
                raise SavedGraphError(
                    f"{where} input {key!r} ({node.name!r}) must be a placeholder with a dtype"
                )
            shape = node.shape.dims
            shape = None if shape is None else [-1 if d is None else d for d in shape]
            in_records[key] = {"name": node.name, "dtype": node.dtype.name, "shape": shape}
        outputs, given = {}, {}
        for key, ref in sig["outputs"].items():
            spec = ref if isinstance(ref, Mapping) else {"node": ref}
            outputs[key] = as_node(graph, spec.get("node"), f"{where} output {key!r}")
            if "dtype" in spec:
                given[key] = {"dtype": np.dtype(spec["dtype"]).name, "shape": spec.get("shape")}
        probed = {}
        if set(given) != set(outputs):
            try:
                probed = _probe_outputs(session, inputs, outputs)
            except Exception as exc:
                raise SavedGraphError(
                    f"{where}: cannot find the outputs' dtype/shape by running "
                    f"a zero batch ({exc}); give them as {{'node': n, 'dtype': "
                    "..., 'shape': [...]}}"
                ) from exc
        records[sig_name] = {
            "inputs": in_records,
            "outputs": {
                k: {"name": node.name, **(given.get(k) or probed[k])} for k, node in outputs.items()
            },
            "method_name": "tensorflow/serving/predict",
        }
        fetches += list(inputs.values()) + list(outputs.values())
    return records, fetches
