"""TF-1's adaptive optimizers: Adam, contrib's LazyAdam, and RMSProp.

`AdamOptimizer` is exactly TF-1's, row-sparse gradients included: every row's moments decay
and every row moves (TF-1's `_apply_sparse_shared`).  `LazyAdamOptimizer` (tf.contrib.opt)
changes only the touched rows' moments and values, so a step's cost does not grow with an
embedding table's size.  Adam's beta1_power / beta2_power are per optimizer, advanced once
per run of any of its train ops, as TF-1's non-slot variables.
"""

from __future__ import annotations

import math

from engine.optimizers import Optimizer

__all__ = ["AdamOptimizer", "LazyAdamOptimizer", "RMSPropOptimizer"]


class AdamOptimizer(Optimizer):
    """TF-1 Adam: m, v slots; lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)."""

    def __init__(
        self,
        learning_rate=0.001,
        beta1=0.9,
        beta2=0.999,
        epsilon=1e-8,
        use_locking=False,
        name="Adam",
    ) -> None:
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate, positive=True)
        self.beta1, self.beta2, self.epsilon = float(beta1), float(beta2), float(epsilon)

    def _slot_inits(self):
        return {"m": 0.0, "v": 0.0}

    def _counter_inits(self):
        return {"beta1_power": self.beta1, "beta2_power": self.beta2}

    def _legacy_counters(self, step: int) -> dict:
        # The old layout counted completed steps; TF-1's powers are beta^(step + 1) then.
        return {"beta1_power": self.beta1 ** (step + 1), "beta2_power": self.beta2 ** (step + 1)}

    def _prepare(self, state, hyper):
        counters = state.counters
        if not counters:
            counters.update(self._counter_inits())
        b1p, b2p = counters["beta1_power"], counters["beta2_power"]
        lr_t = hyper["learning_rate"] * math.sqrt(1 - b2p) / (1 - b1p)
        counters["beta1_power"] = b1p * self.beta1
        counters["beta2_power"] = b2p * self.beta2
        return {**hyper, "lr_t": lr_t}

    def _apply_dense(self, xp, p, g, slots, h, scratch) -> None:
        # In place through one scratch buffer: no allocation per step.
        m, v = slots["m"], slots["v"]
        tmp = _scratch(xp, scratch, p)
        m *= self.beta1
        xp.multiply(g, 1 - self.beta1, out=tmp)
        m += tmp
        v *= self.beta2
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - self.beta2
        v += tmp
        self._move(xp, p, m, v, tmp, h["lr_t"])

    def _move(self, xp, p, m, v, tmp, lr_t) -> None:
        xp.sqrt(v, out=tmp)
        tmp += self.epsilon
        xp.divide(m, tmp, out=tmp)
        tmp *= lr_t
        p -= tmp

    def _apply_sparse(self, xp, p, idx, rows, slots, h, scratch) -> None:
        # TF-1: m = b1 * m; m[idx] += (1 - b1) * g; likewise v; then every row moves.
        m, v = slots["m"], slots["v"]
        m *= self.beta1
        m[idx] += (1 - self.beta1) * rows
        v *= self.beta2
        v[idx] += (1 - self.beta2) * (rows * rows)
        self._move(xp, p, m, v, _scratch(xp, scratch, p), h["lr_t"])


class LazyAdamOptimizer(AdamOptimizer):
    """tf.contrib.opt's LazyAdam: a sparse gradient updates only its rows' moments and values."""

    def _apply_sparse(self, xp, p, idx, rows, slots, h, scratch) -> None:
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
        m_rows *= h["lr_t"]
        p[idx] -= m_rows


class RMSPropOptimizer(Optimizer):
    """TF-1 RMSProp: rms (starting at ones), momentum and, when centered, mg slots."""

    def __init__(
        self,
        learning_rate,
        decay=0.9,
        momentum=0.0,
        epsilon=1e-10,
        use_locking=False,
        centered=False,
        name="RMSProp",
    ) -> None:
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate, positive=True)
        self._set_hyper("decay", decay)
        self._set_hyper("momentum", momentum)
        self._set_hyper("epsilon", epsilon)
        self.centered = bool(centered)

    def _slot_inits(self):
        slots = {"rms": 1.0, "momentum": 0.0}
        if self.centered:
            slots["mg"] = 0.0
        return slots

    def _update(self, xp, g, rms, mom, mg, h):
        # TF-1's kernels: ms += (g^2 - ms)(1 - rho); mom = momentum*mom + lr*g/sqrt(denom).
        rho = h["decay"]
        rms = rms + (g * g - rms) * (1 - rho)
        denom = rms
        if mg is not None:
            mg = mg + (g - mg) * (1 - rho)
            denom = rms - mg * mg
        mom = mom * h["momentum"] + h["learning_rate"] * g / xp.sqrt(denom + h["epsilon"])
        return rms, mom, mg

    def _apply_dense(self, xp, p, g, slots, h, scratch) -> None:
        mg = slots.get("mg")
        rms, mom, new_mg = self._update(xp, g, slots["rms"], slots["momentum"], mg, h)
        slots["rms"][...] = rms
        slots["momentum"][...] = mom
        if mg is not None:
            mg[...] = new_mg
        p -= mom

    def _apply_sparse(self, xp, p, idx, rows, slots, h, scratch) -> None:
        mg = slots.get("mg")
        rms, mom, new_mg = self._update(
            xp, rows, slots["rms"][idx], slots["momentum"][idx],
            None if mg is None else mg[idx], h,
        )  # fmt: skip
        slots["rms"][idx] = rms
        slots["momentum"][idx] = mom
        if mg is not None:
            mg[idx] = new_mg
        p[idx] -= mom


def _scratch(xp, scratch: dict, p):
    tmp = scratch.get("tmp")
    if tmp is None or tmp.shape != p.shape or tmp.dtype != p.dtype:
        tmp = scratch["tmp"] = xp.empty_like(p)
    return tmp
