"""`Variable`: a model parameter whose value lives in each Session (TF-1's tf.Variable)."""

from __future__ import annotations

import numpy as np

from engine.graph import Node, _as_dtype, topological_order
from engine.shapes import TensorShape

__all__ = ["Variable"]


class Variable(Node):
    """A model parameter; its value lives in each Session, starting from `initial_value`.

    `initial_value` may be an array or a node (`tf.zeros([3])`, `tf.random_normal([2, 3])`):
    a node is evaluated once, here, so the variable holds an array like any other.
    """

    op_type = "variable"

    def __init__(
        self,
        initial_value=None,
        trainable=None,
        collections=None,
        validate_shape=True,
        caching_device=None,
        name: str | None = None,
        variable_def=None,
        dtype=None,
        expected_shape=None,
        import_scope=None,
        constraint=None,
        use_resource=None,
        synchronization=None,
        aggregation=None,
        shape=None,
    ):
        if initial_value is None:
            raise ValueError("Variable: initial_value must be given")
        if callable(initial_value) and not isinstance(initial_value, Node):
            initial_value = initial_value()
        if isinstance(initial_value, Node):
            initial_value = _evaluate_initial_value(initial_value, name)
        super().__init__(name)
        self.control_inputs = []
        self.initial_value = np.array(initial_value, dtype=_as_dtype(dtype))
        self.dtype = self.initial_value.dtype
        self.trainable = True if trainable is None else bool(trainable)
        self.graph.variables.append(self)
        if collections is not None:
            for key in collections:
                self.graph.add_to_collection(key, self)

    def _static_shape(self) -> TensorShape:
        return TensorShape(self.initial_value.shape)

    def __getattr__(self, name: str):
        # assign, assign_add, initializer, ... live in state_ops (they need Session types).
        from engine import state_ops

        method = state_ops.VARIABLE_METHODS.get(name)
        if method is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return method(self)


def _evaluate_initial_value(node: Node, name: str | None):
    from engine.session import Session

    needed = [n for n in topological_order([node]) if isinstance(n, Variable)]
    session = Session(node.graph)
    try:
        session.initialize_variables(needed)
        return session.run(node)
    except Exception as exc:
        raise ValueError(
            f"Variable {name or ''!r}: its initial value {node.name!r} cannot be computed "
            f"when the variable is created: {exc}"
        ) from exc
    finally:
        session.close()
