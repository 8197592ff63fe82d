"""TF-1's first-order optimizers: gradient descent, momentum, Adagrad and FTRL.

Dense rules are TF-1's `training_ops` kernels; sparse rules (`_apply_sparse`) touch only the
gathered rows, as TF-1's `sparse_apply_*` kernels do.
"""

from __future__ import annotations

from engine.optimizers import Optimizer

__all__ = [
    "AdagradOptimizer",
    "FtrlOptimizer",
    "GradientDescentOptimizer",
    "MomentumOptimizer",
]


class GradientDescentOptimizer(Optimizer):
    """p -= lr * g."""

    def __init__(self, learning_rate, use_locking=False, name="GradientDescent") -> None:
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate, positive=True)

    def _apply_dense(self, xp, p, g, slots, h, scratch) -> None:
        p -= h["learning_rate"] * g

    def _apply_sparse(self, xp, p, idx, rows, slots, h, scratch) -> None:
        p[idx] -= h["learning_rate"] * rows


class MomentumOptimizer(Optimizer):
    """accum = momentum * accum + g; p -= lr * accum (Nesterov: lr * (g + momentum * accum))."""

    _legacy_slot_names = {"accum": "momentum"}

    def __init__(
        self, learning_rate, momentum, use_locking=False, name="Momentum", use_nesterov=False
    ) -> None:
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate, positive=True)
        self._set_hyper("momentum", momentum)
        self.use_nesterov = bool(use_nesterov)

    def _slot_inits(self):
        return {"momentum": 0.0}

    def _step(self, g, accum, h):
        lr, mu = h["learning_rate"], h["momentum"]
        return lr * (g + mu * accum) if self.use_nesterov else lr * accum

    def _apply_dense(self, xp, p, g, slots, h, scratch) -> None:
        accum = slots["momentum"]
        accum *= h["momentum"]
        accum += g
        p -= self._step(g, accum, h)

    def _apply_sparse(self, xp, p, idx, rows, slots, h, scratch) -> None:
        accum = slots["momentum"][idx] * h["momentum"] + rows
        slots["momentum"][idx] = accum
        p[idx] -= self._step(rows, accum, h)


class AdagradOptimizer(Optimizer):
    """accum += g**2; p -= lr * g / sqrt(accum) (accumulators start at 0.1, as TF-1)."""

    _legacy_slot_names = {"accum": "accumulator"}

    def __init__(
        self, learning_rate, initial_accumulator_value=0.1, use_locking=False, name="Adagrad"
    ) -> None:
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate, positive=True)
        if not float(initial_accumulator_value) > 0:
            raise ValueError(
                f"initial_accumulator_value must be > 0, got {initial_accumulator_value}"
            )
        self.initial_accumulator_value = float(initial_accumulator_value)

    def _slot_inits(self):
        return {"accumulator": self.initial_accumulator_value}

    def _apply_dense(self, xp, p, g, slots, h, scratch) -> None:
        accum = slots["accumulator"]
        accum += g * g
        p -= h["learning_rate"] * g / xp.sqrt(accum)

    def _apply_sparse(self, xp, p, idx, rows, slots, h, scratch) -> None:
        accum = slots["accumulator"][idx] + rows * rows
        slots["accumulator"][idx] = accum
        p[idx] -= h["learning_rate"] * rows / xp.sqrt(accum)


class FtrlOptimizer(Optimizer):
    """FTRL-Proximal (McMahan et al. 2013), TF-1's `FtrlOptimizer` incl. its V2 shrinkage
    (and the later `beta`)."""

    def __init__(
        self,
        learning_rate,
        learning_rate_power=-0.5,
        initial_accumulator_value=0.1,
        l1_regularization_strength=0.0,
        l2_regularization_strength=0.0,
        use_locking=False,
        name="Ftrl",
        accum_name=None,
        linear_name=None,
        l2_shrinkage_regularization_strength=0.0,
        beta=None,
    ) -> None:
        super().__init__(use_locking, name)
        self._set_hyper("learning_rate", learning_rate, positive=True)
        checks = {
            "initial_accumulator_value": initial_accumulator_value,
            "l1_regularization_strength": l1_regularization_strength,
            "l2_regularization_strength": l2_regularization_strength,
            "l2_shrinkage_regularization_strength": l2_shrinkage_regularization_strength,
            "beta": 0.0 if beta is None else beta,
        }
        for what, value in checks.items():
            if not float(value) >= 0:
                raise ValueError(f"{what} must be >= 0, got {value}")
        if not float(learning_rate_power) <= 0:
            raise ValueError(f"learning_rate_power must be <= 0, got {learning_rate_power}")
        self.learning_rate_power = float(learning_rate_power)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.l1 = float(l1_regularization_strength)
        self.l2 = float(l2_regularization_strength)
        self.l2_shrinkage = float(l2_shrinkage_regularization_strength)
        # TF's later `beta` adds beta / (2 * learning_rate) to the L2 strength.
        self.beta = 0.0 if beta is None else float(beta)
        self._accum_name = accum_name or "accum"
        self._linear_name = linear_name or "linear"

    def _slot_inits(self):
        return {self._accum_name: self.initial_accumulator_value, self._linear_name: 0.0}

    def _power(self, xp, accum):
        # accum ** -lr_power; sqrt for TF-1's default -0.5, as its kernel does.
        if self.learning_rate_power == -0.5:
            return xp.sqrt(accum)
        return xp.power(accum, -self.learning_rate_power)

    def _update(self, xp, p, g, accum, linear, lr):
        new_accum = accum + g * g
        shrunk_g = g + 2 * self.l2_shrinkage * p if self.l2_shrinkage else g
        new_power = self._power(xp, new_accum)
        linear = linear + shrunk_g - (new_power - self._power(xp, accum)) / lr * p
        quadratic = new_power / lr + 2 * self.l2 + self.beta / lr
        value = (xp.sign(linear) * self.l1 - linear) / quadratic
        return xp.where(xp.abs(linear) > self.l1, value, 0), new_accum, linear

    def _apply_dense(self, xp, p, g, slots, h, scratch) -> None:
        accum, linear = slots[self._accum_name], slots[self._linear_name]
        new_p, new_accum, new_linear = self._update(xp, p, g, accum, linear, h["learning_rate"])
        p[...] = new_p
        accum[...] = new_accum
        linear[...] = new_linear

    def _apply_sparse(self, xp, p, idx, rows, slots, h, scratch) -> None:
        accum, linear = slots[self._accum_name], slots[self._linear_name]
        new_p, new_accum, new_linear = self._update(
            xp, p[idx], rows, accum[idx], linear[idx], h["learning_rate"]
        )
        p[idx] = new_p
        accum[idx] = new_accum
        linear[idx] = new_linear
