"""Applying already-reduced gradients with the trainer's own optimizer.

The engine's train op computes its gradients in the same run; here they arrive from the
all-reduce instead, so each is fed through a placeholder (a row-sparse one as indices + rows,
rebuilt into `IndexedSlices` by a one-line op) into `optimizer.apply_gradients`. Using the
trainer's optimizer object keeps the update rule, the lazy row-sparse Adam and the slot layout
(checkpoints) exactly those of single-process training.
"""

from __future__ import annotations

import engine as tf
from engine import IndexedSlices

__all__ = ["GradientApplier", "is_row_sparse"]


def is_row_sparse(var, loss) -> bool:
    """Whether the engine gives `var` a row-sparse gradient of `loss`: on the way to the loss
    it is read only as a gather's table (other reads, e.g. full-catalogue scoring, count not:
    the backward pass never visits them)."""
    on_path = {id(n) for n in tf.topological_order([loss])}
    used = [c for c in var.consumers if id(c) in on_path]
    return bool(used) and all(c.op_type == "gather" and c.input_nodes[0] is var for c in used)


class _RowSlices(tf.Operation):
    """IndexedSlices(indices, rows) of a table of `dense_shape`: a fed sparse gradient."""

    op_type = "distributed_row_slices"

    def __init__(self, indices, rows, dense_shape, name=None) -> None:
        super().__init__([indices, rows], name=name, dense_shape=[int(d) for d in dense_shape])

    def forward(self, xp, indices, rows):
        return IndexedSlices(indices, rows, tuple(self.dense_shape))


class GradientApplier:
    """One optimizer step on `variables` from fed gradients (dense arrays or IndexedSlices)."""

    def __init__(self, optimizer, variables: list, sparse: list[bool], graph) -> None:
        self.variables, self.sparse = list(variables), list(sparse)
        self._feeds: list[tuple] = []
        nodes = []
        with graph.as_default():
            for var, is_sparse in zip(self.variables, self.sparse, strict=True):
                base = f"reduced_gradients/{var.name}"
                if is_sparse:
                    indices = tf.placeholder(None, shape=(None,), name=f"{base}/indices")
                    rows = tf.placeholder(var.dtype, (None, *var.shape[1:]), name=f"{base}/rows")
                    nodes.append(_RowSlices(indices, rows, var.shape, name=base))
                    self._feeds.append((indices, rows))
                else:
                    value = tf.placeholder(var.dtype, var.shape, name=base)
                    nodes.append(value)
                    self._feeds.append((value,))
            self.train_op = optimizer.apply_gradients(list(zip(nodes, self.variables, strict=True)))

    def apply(self, session, grads: list) -> None:
        """Update the variables in `session` with `grads` (one per variable, in order)."""
        feed = {}
        for placeholders, g, is_sparse in zip(self._feeds, grads, self.sparse, strict=True):
            if is_sparse:
                feed[placeholders[0]] = g.indices
                feed[placeholders[1]] = g.values
            else:
                feed[placeholders[0]] = g
        session.run(self.train_op, feed)
