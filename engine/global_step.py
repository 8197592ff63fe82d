"""TF-1's global step: an int64 scalar, non-trainable variable named "global_step".

It lives in the graph's "global_step" collection (TF-1's `GraphKeys.GLOBAL_STEP`); a graph
without one there falls back to a variable named "global_step", as TF-1 does.
"""

from __future__ import annotations

import numpy as np

from engine.graph import Variable, get_default_graph

__all__ = [
    "GLOBAL_STEP_KEY",
    "create_global_step",
    "get_global_step",
    "get_or_create_global_step",
    "global_step",
]

GLOBAL_STEP_KEY = "global_step"


def get_global_step(graph=None):
    """The graph's global step variable (default graph), or None when it has none."""
    graph = graph if graph is not None else get_default_graph()
    found = graph.get_collection(GLOBAL_STEP_KEY)
    if len(found) > 1:
        raise TypeError("There are multiple global steps: the collection holds more than one")
    if found:
        return found[0]
    try:
        node = graph.get_node("global_step")
    except KeyError:
        return None
    if isinstance(node, Variable) and node.dtype.kind in "iu" and tuple(node.shape) == ():
        return node
    return None


def create_global_step(graph=None):
    """A new global step (int64 scalar, 0, not trainable); ValueError when one exists."""
    graph = graph if graph is not None else get_default_graph()
    if get_global_step(graph) is not None:
        raise ValueError('"global_step" already exists.')
    with graph.as_default():
        step = Variable(
            np.int64(0),
            trainable=False,
            collections=["variables", GLOBAL_STEP_KEY],
            name="global_step",
            dtype=np.int64,
        )
    return step


def get_or_create_global_step(graph=None):
    """The graph's global step, created first when it has none."""
    graph = graph if graph is not None else get_default_graph()
    step = get_global_step(graph)
    return step if step is not None else create_global_step(graph)


def global_step(sess, global_step_tensor) -> int:
    """The global step's value in `sess` as a Python int (TF-1's `tf.train.global_step`)."""
    return int(sess.run(global_step_tensor))
