"""The optimizer base (TF-1's `tf.train.Optimizer`) and its train op.

`minimize(loss)` returns a train op; running it runs the forward and backward pass it needs
in the same run, then updates variables in place in the session.  A row-sparse gradient
(gather / embedding_lookup) is applied by the optimizer's sparse rule, duplicates summed
first, as TF-1's `_apply_sparse_duplicate_indices`.  State lives per session:
`session.optimizer_state[optimizer]` is an `engine.optimizer_state.OptimizerState`, one set
of slots per variable however many train ops the optimizer built.  Hyperparameters
(learning rate first) may be graph nodes, read in the run that applies the update.
"""

from __future__ import annotations

import weakref

import numpy as np

from engine.autodiff import gradients
from engine.errors import GraphError
from engine.graph import Node, as_node
from engine.optimizer_nodes import SlotValue, TrainOp
from engine.optimizer_state import OptimizerState

__all__ = ["Optimizer", "TrainOp", "graph_optimizers"]

# The optimizers that built train ops in each graph, in order (what a Saver saves).
_GRAPH_OPTIMIZERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def graph_optimizers(graph) -> list:
    """The optimizers that built train ops in `graph`, first built first."""
    return list(_GRAPH_OPTIMIZERS.get(graph, ()))


class Optimizer:
    """TF-1's optimizer base: subclasses define slots, counters and the update rules.

    Subclasses set hyperparameters with `_set_hyper`, give `_slot_inits()` ({slot name:
    initial value}), `_counter_inits()` ({non-slot name: initial value}), `_prepare(state,
    hyper)` (this run's scalars; advances counters once per run), `_apply_dense(xp, p, g,
    slots, h, scratch)` and `_apply_sparse(xp, p, idx, rows, slots, h, scratch)`, both in place.
    """

    GATE_NONE, GATE_OP, GATE_GRAPH = 0, 1, 2

    def __init__(self, use_locking: bool, name: str) -> None:
        if not name:
            raise ValueError("Must specify the optimizer name")
        self._use_locking = bool(use_locking)
        self._name = name
        self._hyper: dict = {}
        self._trained: dict = {}  # variables of every apply_gradients call, in order

    @property
    def name(self) -> str:
        return self._name

    def get_name(self) -> str:
        """The optimizer's name (TF-1's `get_name()`)."""
        return self._name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r}>"

    @property
    def learning_rate(self):
        return self._hyper["learning_rate"]

    def _set_hyper(self, key: str, value, positive: bool = False, non_negative: bool = False):
        if isinstance(value, Node):
            self._hyper[key] = value
            return
        try:
            value = float(np.asarray(value))
        except (TypeError, ValueError):
            raise TypeError(f"{key} must be a number or a graph node, got {value!r}") from None
        if positive and not value > 0:
            raise ValueError(f"{key} must be > 0, got {value}")
        if non_negative and not value >= 0:
            raise ValueError(f"{key} must be >= 0, got {value}")
        self._hyper[key] = value

    # -- TF-1's public API -------------------------------------------------------------

    def compute_gradients(
        self,
        loss,
        var_list=None,
        gate_gradients=GATE_OP,
        aggregation_method=None,
        colocate_gradients_with_ops=False,
        grad_loss=None,
    ):
        """(gradient node or None, variable) pairs of `loss` (default: trainable variables).

        `gate_gradients`, `aggregation_method` and `colocate_gradients_with_ops` are accepted
        for TF-1 compatibility; a run computes gradients in one pass either way.
        """
        if gate_gradients not in (self.GATE_NONE, self.GATE_OP, self.GATE_GRAPH):
            raise ValueError(
                f"gate_gradients must be GATE_NONE, GATE_OP or GATE_GRAPH, got {gate_gradients}"
            )
        if var_list is None:
            var_list = [v for v in loss.graph.variables if v.trainable]
        var_list = list(var_list.values() if isinstance(var_list, dict) else var_list)
        if not var_list:
            raise GraphError(f"{self._name}: no variables to optimize")
        grad_ys = None if grad_loss is None else [as_node(grad_loss, loss.graph)]
        return list(zip(gradients(loss, var_list, grad_ys=grad_ys), var_list, strict=True))

    def apply_gradients(self, grads_and_vars, global_step=None, name=None) -> TrainOp:
        """A train op applying these (gradient, variable) pairs; then global_step += 1."""
        pairs = list(grads_and_vars)
        if not pairs:
            raise ValueError("No variables provided.")
        for _, var in pairs:
            if var.dtype.kind != "f":
                raise GraphError(
                    f"{self._name}: variable {var.name!r} has dtype {var.dtype}; only "
                    "floating-point variables can be trained (create it from float values)"
                )
        graph = pairs[0][1].graph
        pairs = [
            (g if isinstance(g, Node) else as_node(g, graph), v) for g, v in pairs if g is not None
        ]
        if not pairs:
            names = [v.name for _, v in grads_and_vars]
            raise GraphError(
                f"{self._name}: no gradient for any of {names}: the loss does not depend on them"
            )
        seen = set()
        for _, var in pairs:
            if var in seen:
                raise ValueError(f"{self._name}: variable {var.name!r} appears twice")
            seen.add(var)
            self._trained.setdefault(var, None)
        registered = _GRAPH_OPTIMIZERS.setdefault(graph, [])
        if self not in registered:
            registered.append(self)
        return TrainOp(self, pairs, global_step, name or self._name)

    def minimize(
        self,
        loss,
        global_step=None,
        var_list=None,
        gate_gradients=GATE_OP,
        aggregation_method=None,
        colocate_gradients_with_ops=False,
        name=None,
        grad_loss=None,
    ) -> TrainOp:
        """A train op doing one step on `loss` (compute_gradients + apply_gradients)."""
        pairs = self.compute_gradients(
            loss, var_list, gate_gradients, aggregation_method, colocate_gradients_with_ops,
            grad_loss,
        )  # fmt: skip
        return self.apply_gradients(pairs, global_step=global_step, name=name)

    def get_slot_names(self) -> list[str]:
        """The names of the slots this optimizer keeps per variable, sorted (TF-1)."""
        return sorted(self._slot_inits())

    def get_slot(self, var, name):
        """A node reading `var`'s slot `name` when run; None when this optimizer keeps no such
        slot for `var` (TF-1's `get_slot`)."""
        if var not in self._trained or name not in self._slot_inits():
            return None
        return SlotValue(self, var, name)

    def variables_trained(self, graph=None) -> list:
        """The variables this optimizer's train ops update (in `graph` when given)."""
        return [v for v in self._trained if graph is None or v.graph is graph]

    def state_dict(self, session) -> dict[str, np.ndarray]:
        """This optimizer's state in `session`: `{"<var>/<slot>": array, "<counter>": array}`.

        Keyed by variable and slot name only (not by how a variable was updated); `{}` while
        the optimizer has not run in `session`.
        """
        state = session.optimizer_state.get(self)
        if state is None:
            return {}
        variables = self.variables_trained(session.graph)
        for var in variables:
            session._ensure_initialized(var)
        return state.arrays(self, session.xp, session._values, variables)

    def load_state_dict(self, session, state_dict) -> None:
        """Put `state_dict` (from `state_dict`, maybe another session) into `session`.

        An empty dict resets the optimizer; checkpoints of the older layout (`__step__`,
        Momentum/Adagrad's `accum`) are read too.
        """
        arrays = self._from_legacy(dict(state_dict))
        session.optimizer_state.pop(self, None)
        if not arrays:
            return
        variables = self.variables_trained(session.graph)
        session.optimizer_state[self] = OptimizerState.from_arrays(
            self, session.xp, variables, arrays
        )

    # -- what subclasses define --------------------------------------------------------

    _legacy_slot_names: dict[str, str] = {}

    def _from_legacy(self, arrays: dict) -> dict:
        step = arrays.pop("__step__", None)
        if step is not None and int(np.asarray(step).reshape(-1)[0]) == 0:
            return {}
        for key in list(arrays):
            var, _, slot = key.rpartition("/")
            if var and slot in self._legacy_slot_names:
                arrays[f"{var}/{self._legacy_slot_names[slot]}"] = arrays.pop(key)
        if step is not None:
            arrays.update(self._legacy_counters(int(np.asarray(step).reshape(-1)[0])))
        return arrays

    def _legacy_counters(self, step: int) -> dict:
        return {}

    def _slot_inits(self) -> dict[str, float]:
        return {}

    def _counter_inits(self) -> dict[str, float]:
        return {}

    def _prepare(self, state: OptimizerState, hyper: dict) -> dict:
        return hyper

    def _apply_dense(self, xp, p, g, slots, h, scratch) -> None:
        raise NotImplementedError

    def _apply_sparse(self, xp, p, idx, rows, slots, h, scratch) -> None:
        raise NotImplementedError
