"""The meta nodes optimizers build: the train op, and a slot read (TF-1's `get_slot`).

Both are update nodes: a Session gives them its state when it compiles a run, and runs them
after every other step of that run (so a fetched loss is the pre-update one).
"""

from __future__ import annotations

from engine.backend import to_numpy
from engine.graph import Node
from engine.optimizer_state import OptimizerState
from engine.session import UpdateNode
from engine.shapes import TensorShape

__all__ = ["SlotValue", "TrainOp"]


class TrainOp(UpdateNode):
    """Meta node: one optimizer step over `variables` with this run's `grads`.

    Its inputs are the gradients and the optimizer's hyperparameters that are graph nodes
    (a learning-rate schedule, a placeholder), read in the same run; then `global_step`
    (when given) goes up by one.
    """

    op_type = "train"

    def __init__(self, optimizer, pairs, global_step, name: str) -> None:
        super().__init__(name, pairs[0][1].graph)
        self.optimizer = optimizer
        self.grads = [g for g, _ in pairs]
        self.variables = [v for _, v in pairs]
        self.global_step = global_step
        self.hyper_nodes = {k: v for k, v in optimizer._hyper.items() if isinstance(v, Node)}
        self.input_nodes = list(self.grads) + list(self.hyper_nodes.values())
        self.graph.meta_nodes.append(self)

    def make_step(self, session, slots):
        grad_slots = [slots[id(g)] for g in self.grads]
        hyper_slots = [(k, slots[id(node)]) for k, node in self.hyper_nodes.items()]
        fixed = {k: v for k, v in self.optimizer._hyper.items() if k not in self.hyper_nodes}
        for var in self.variables:
            session._ensure_initialized(var)
        optimizer, variables = self.optimizer, self.variables
        store, xp, states = session._values, session.xp, session.optimizer_state
        global_step = self.global_step
        if global_step is not None:
            session._ensure_initialized(global_step)

        def step(v):
            hyper = dict(fixed)
            for key, slot in hyper_slots:
                hyper[key] = float(to_numpy(v[slot]))
            state = states.get(optimizer)
            if state is None:
                state = states[optimizer] = OptimizerState()
            prepared = optimizer._prepare(state, hyper)
            state.apply(optimizer, xp, store, variables, [v[s] for s in grad_slots], prepared)
            if global_step is not None:
                # A new array, not in place: a global step fetched in this run stays pre-update.
                store[global_step] = store[global_step] + 1

        return step


class SlotValue(UpdateNode):
    """Meta node: `variable`'s slot `slot_name` of `optimizer` in the running session."""

    op_type = "slot_value"

    def __init__(self, optimizer, variable, slot_name: str) -> None:
        super().__init__(f"{variable.name}/{optimizer.get_name()}/{slot_name}", variable.graph)
        self.optimizer, self.variable, self.slot_name = optimizer, variable, slot_name
        self.dtype = variable.dtype
        self.graph.meta_nodes.append(self)

    def _static_shape(self) -> TensorShape:
        return TensorShape(tuple(self.variable.shape))

    def make_step(self, session, slots):
        index = slots[id(self)]
        optimizer, var, name = self.optimizer, self.variable, self.slot_name
        session._ensure_initialized(var)

        def step(v):
            state = session.optimizer_state.get(optimizer)
            if state is None:  # not trained yet: TF-1's slot holds its initial value
                state = session.optimizer_state[optimizer] = OptimizerState()
            value = session._values[var]
            v[index] = state.slots_for(optimizer, session.xp, var, value)[name]

        return step
