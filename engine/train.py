"""Optimizers (TF-1 update rules): SGD, momentum, Adagrad, Adam (lazy for embeddings), FTRL.

`minimize(loss)` returns a train op; running it runs the forward and backward pass it needs
in the same run, then updates variables in place in the session.  A row-sparse gradient
(gather / embedding_lookup) updates only the touched rows, duplicates summed first, so a
step's cost does not grow with the table's size.  Per-variable optimizer state ("slots")
lives in `session.optimizer_state[optimizer]`.
"""

from __future__ import annotations

import math

from engine.autodiff import compute_gradients
from engine.errors import GraphError
from engine.session import UpdateNode
from engine.sparse import IndexedSlices

__all__ = [
    "AdagradOptimizer",
    "AdamOptimizer",
    "FtrlOptimizer",
    "GradientDescentOptimizer",
    "MomentumOptimizer",
    "Optimizer",
    "TrainOp",
]


class TrainOp(UpdateNode):
    """Meta node: one optimizer step over `variables` with the fetched `grads`."""

    op_type = "train"

    def __init__(self, optimizer: Optimizer, grads_and_vars, name: str) -> None:
        pairs = [(g, v) for g, v in grads_and_vars if g is not None]
        super().__init__(name, pairs[0][1].graph)
        self.optimizer = optimizer
        self.grads = [g for g, _ in pairs]
        self.variables = [v for _, v in pairs]
        self.input_nodes = list(self.grads)
        self.graph.meta_nodes.append(self)

    def make_step(self, session, slots):
        grad_slots = [slots[id(g)] for g in self.grads]
        for var in self.variables:
            session._ensure_initialized(var)
        apply = self.optimizer._make_apply(session, self.variables)

        def step(v):
            apply([v[s] for s in grad_slots])

        return step


class Optimizer:
    """Base: subclasses define `_update` on arrays (whole variables or gathered rows)."""

    slot_names: tuple[str, ...] = ()
    initial_slot_value = 0.0

    def __init__(self, learning_rate: float, name: str) -> None:
        self.learning_rate = _positive("learning_rate", learning_rate)
        self.name = name

    def compute_gradients(self, loss, var_list=None):
        """(gradient node, variable) pairs; see `engine.compute_gradients`."""
        return compute_gradients(loss, var_list)

    def apply_gradients(self, grads_and_vars, name: str | None = None) -> TrainOp:
        """A train op applying these (gradient node, variable) pairs."""
        pairs = list(grads_and_vars)
        for _, var in pairs:
            if var.dtype.kind != "f":
                raise GraphError(
                    f"{self.name}: variable {var.name!r} has dtype {var.dtype}; only "
                    "floating-point variables can be trained (create it from float values)"
                )
        if all(g is None for g, _ in pairs):
            names = [v.name for _, v in pairs]
            raise GraphError(
                f"{self.name}: no gradient for any of {names}: the loss does not depend on them"
            )
        return TrainOp(self, pairs, name or self.name)

    def minimize(self, loss, var_list=None, name: str | None = None) -> TrainOp:
        """A train op doing one step on `loss` w.r.t. `var_list` (default: trainable variables)."""
        return self.apply_gradients(self.compute_gradients(loss, var_list), name)

    def _make_apply(self, session, variables):
        xp, store, states = session.xp, session._values, session.optimizer_state

        def apply(grads):
            state = states.get(self)
            if state is None:
                state = states[self] = {"step": 0, "slots": {}, "groups": {}}
            state["step"] += 1
            scalars = self._step_scalars(state["step"])
            dense_vars, dense_grads = [], []
            for var, g in zip(variables, grads, strict=True):
                if type(g) is IndexedSlices:
                    idx, rows = g.deduplicated(xp)
                    slots = self._slots_for(xp, state["slots"], var, store[var])
                    self._apply_sparse(xp, store[var], idx, rows, slots, scalars)
                else:
                    dense_vars.append(var)
                    dense_grads.append(g)
            if dense_vars:
                self._apply_dense_group(xp, store, state, dense_vars, dense_grads, scalars)

        return apply

    def _slots_for(self, xp, table, var, p) -> dict:
        slots = table.get(var)
        if slots is None:
            slots = table[var] = self._create_slots(xp, p)
        return slots

    def _apply_dense_group(self, xp, store, state, variables, grads, scalars) -> None:
        # Dense variables live as views into one flat buffer, so each update rule runs once
        # per step over all of them instead of once per variable.
        group = state["groups"].setdefault(tuple(variables), {"views": None, "slots": None})
        views = group["views"]
        if views is None or any(store[v] is not w for v, w in zip(variables, views, strict=True)):
            group["flat"], group["views"] = _pack(xp, store, variables)
        flat = group["flat"]
        if flat is None:  # mixed dtypes: one update per variable
            for var, g in zip(variables, grads, strict=True):
                slots = self._slots_for(xp, state["slots"], var, store[var])
                self._apply_dense(xp, store[var], g, slots, scalars)
            return
        if group["slots"] is None:
            group["slots"] = self._create_slots(xp, flat)
        g = xp.concatenate([g.reshape(-1) for g in grads]) if len(grads) > 1 else grads[0]
        self._apply_dense(xp, flat, g.reshape(-1), group["slots"], scalars)

    def _create_slots(self, xp, p) -> dict:
        return {name: xp.full_like(p, self.initial_slot_value) for name in self.slot_names}

    def _step_scalars(self, step: int):
        return None

    def _apply_dense(self, xp, p, g, slots, scalars) -> None:
        new_p, new_slots = self._update(xp, p, g, slots, scalars)
        p[...] = new_p
        for name, value in new_slots.items():
            slots[name][...] = value

    def _apply_sparse(self, xp, p, idx, rows, slots, scalars) -> None:
        gathered = {name: slot[idx] for name, slot in slots.items()}
        new_p, new_slots = self._update(xp, p[idx], rows, gathered, scalars)
        p[idx] = new_p
        for name, value in new_slots.items():
            slots[name][idx] = value

    def _update(self, xp, p, g, slots, scalars):
        raise NotImplementedError


def _pack(xp, store, variables):
    """(flat buffer, views): the variables' values moved into one buffer, store holding views."""
    arrays = [store[v] for v in variables]
    dtype = arrays[0].dtype
    if any(a.dtype != dtype for a in arrays):
        return None, None
    flat = xp.empty(sum(a.size for a in arrays), dtype=dtype)
    views, offset = [], 0
    for var, a in zip(variables, arrays, strict=True):
        view = flat[offset : offset + a.size].reshape(a.shape)
        view[...] = a
        store[var] = view
        views.append(view)
        offset += a.size
    return flat, views


def _positive(what: str, value) -> float:
    value = float(value)
    if not value > 0:
        raise ValueError(f"{what} must be > 0, got {value}")
    return value


class GradientDescentOptimizer(Optimizer):
    """p -= lr * g."""

    def __init__(self, learning_rate: float, name: str = "GradientDescent") -> None:
        super().__init__(learning_rate, name)

    def _apply_dense(self, xp, p, g, slots, scalars) -> None:
        p -= self.learning_rate * g

    def _update(self, xp, p, g, slots, scalars):
        return p - self.learning_rate * g, {}


class MomentumOptimizer(Optimizer):
    """accum = momentum * accum + g; p -= lr * accum (Nesterov: lr * (g + momentum * accum))."""

    slot_names = ("accum",)

    def __init__(self, learning_rate, momentum, use_nesterov=False, name="Momentum") -> None:
        super().__init__(learning_rate, name)
        self.momentum = float(momentum)
        self.use_nesterov = bool(use_nesterov)

    def _update(self, xp, p, g, slots, scalars):
        accum = self.momentum * slots["accum"] + g
        step = g + self.momentum * accum if self.use_nesterov else accum
        return p - self.learning_rate * step, {"accum": accum}


class AdagradOptimizer(Optimizer):
    """accum += g**2; p -= lr * g / sqrt(accum) (accumulators start at 0.1, as TF-1)."""

    slot_names = ("accum",)

    def __init__(self, learning_rate, initial_accumulator_value=0.1, name="Adagrad") -> None:
        super().__init__(learning_rate, name)
        self.initial_slot_value = _positive("initial_accumulator_value", initial_accumulator_value)

    def _update(self, xp, p, g, slots, scalars):
        accum = slots["accum"] + g * g
        return p - self.learning_rate * g / xp.sqrt(accum), {"accum": accum}


class AdamOptimizer(Optimizer):
    """TF-1 Adam; sparse gradients update only touched rows' moments (lazy Adam)."""

    slot_names = ("m", "v")

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, name="Adam"):
        super().__init__(learning_rate, name)
        self.beta1, self.beta2, self.epsilon = float(beta1), float(beta2), float(epsilon)

    def _step_scalars(self, step: int):
        return self.learning_rate * math.sqrt(1 - self.beta2**step) / (1 - self.beta1**step)

    def _apply_dense(self, xp, p, g, slots, lr_t) -> None:
        # In place through one scratch buffer: no allocation per step.
        m, v = slots["m"], slots["v"]
        tmp = slots.get("tmp")
        if tmp is None:  # dense variables only: a table updated sparsely never needs one
            tmp = slots["tmp"] = xp.empty_like(p)
        m *= self.beta1
        xp.multiply(g, 1 - self.beta1, out=tmp)
        m += tmp
        v *= self.beta2
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - self.beta2
        v += tmp
        xp.sqrt(v, out=tmp)
        tmp += self.epsilon
        xp.divide(m, tmp, out=tmp)
        tmp *= lr_t
        p -= tmp

    def _apply_sparse(self, xp, p, idx, rows, slots, lr_t) -> None:
        m_rows = slots["m"].take(idx, axis=0)
        m_rows *= self.beta1
        m_rows += (1 - self.beta1) * rows
        slots["m"][idx] = m_rows
        v_rows = slots["v"].take(idx, axis=0)
        v_rows *= self.beta2
        v_rows += (1 - self.beta2) * (rows * rows)
        slots["v"][idx] = v_rows
        xp.sqrt(v_rows, out=v_rows)
        v_rows += self.epsilon
        m_rows /= v_rows
        m_rows *= lr_t
        p[idx] -= m_rows


class FtrlOptimizer(Optimizer):
    """FTRL-Proximal (McMahan et al. 2013; TF-1 FtrlOptimizer with learning_rate_power=-0.5)."""

    slot_names = ("accum", "linear")

    def __init__(
        self,
        learning_rate,
        initial_accumulator_value=0.1,
        l1_regularization_strength=0.0,
        l2_regularization_strength=0.0,
        name="Ftrl",
    ) -> None:
        super().__init__(learning_rate, name)
        self.initial_accumulator_value = _positive(
            "initial_accumulator_value", initial_accumulator_value
        )
        self.l1 = float(l1_regularization_strength)
        self.l2 = float(l2_regularization_strength)
        if self.l1 < 0 or self.l2 < 0:
            raise ValueError("FTRL regularization strengths must be >= 0")

    def _create_slots(self, xp, p) -> dict:
        return {
            "accum": xp.full_like(p, self.initial_accumulator_value),
            "linear": xp.zeros_like(p),
        }

    def _update(self, xp, p, g, slots, scalars):
        lr = self.learning_rate
        accum, linear = slots["accum"], slots["linear"]
        new_accum = accum + g * g
        sqrt_new = xp.sqrt(new_accum)
        sigma = (sqrt_new - xp.sqrt(accum)) / lr
        linear = linear + g - sigma * p
        quadratic = sqrt_new / lr + 2 * self.l2
        shrunk = (xp.sign(linear) * self.l1 - linear) / quadratic
        new_p = xp.where(xp.abs(linear) > self.l1, shrunk, 0)
        return new_p, {"accum": new_accum, "linear": linear}
