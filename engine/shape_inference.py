"""Static shape and dtype inference over a graph, cached per graph version.

An op states its output shape in `infer_shape(*input_shapes)` and its dtype in
`infer_dtype(*input_dtypes)`; this module walks the uncached ops an answer needs, inputs first
and without recursion (deep graphs), and caches each result until the graph is rewired.
"""

from __future__ import annotations

import numpy as np

from engine.shapes import TensorShape, as_shape

__all__ = ["WEAK", "inferred"]

WEAK = object()  # a weakly typed scalar's place among an op's input dtypes


def inferred(op) -> tuple[TensorShape, object]:
    """(shape, dtype) of `op`, cached per graph version; inputs first, without recursion."""
    version = op.graph.version
    cached = op.__dict__.get("_inferred")
    if cached is not None and cached[0] == version:
        return cached[1], cached[2]
    pending, stack = [], [(op, False)]
    while stack:  # uncached Operation ancestors in post-order: inputs before consumers
        node, expanded = stack.pop()
        if expanded:
            pending.append(node)
            continue
        if node.__dict__.get("_visiting") == version:
            continue
        node._visiting = version
        stack.append((node, True))
        for parent in node.input_nodes:
            if hasattr(parent, "infer_dtype"):
                known = parent.__dict__.get("_inferred")
                if known is None or known[0] != version:
                    stack.append((parent, False))
    for node in pending:
        shapes = [p.shape for p in node.input_nodes]
        dtypes = [WEAK if getattr(p, "weakly_typed", False) else p.dtype for p in node.input_nodes]
        shape, dtype = TensorShape(None), None
        infer = getattr(node, "infer_shape", None)
        try:
            result = None if infer is None else infer(*shapes)
            shape = TensorShape(None) if result is None else as_shape(result)
        except Exception:  # noqa: BLE001 - inference only informs; the run checks shapes
            shape = TensorShape(None)
        try:
            dtype = node.infer_dtype(*dtypes)
            dtype = None if dtype is None else np.dtype(dtype)
        except Exception:  # noqa: BLE001
            dtype = None
        node._inferred = (version, shape, dtype)
    return op._inferred[1], op._inferred[2]
