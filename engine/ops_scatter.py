"""scatter_nd (gather_nd's adjoint) and broadcast_to, with their gradients."""

from __future__ import annotations

from engine.autodiff import RegisterGradient
from engine.backend import scatter_add
from engine.graph import Operation
from engine.ops_stack import int_vector
from engine.shape_helpers import format_shape, int_list, known_dtype, static_shape_of
from engine.shapes import TensorShape, broadcast_shape

__all__ = ["broadcast_to", "scatter_nd"]


def _nd_key(xp, indices) -> tuple:
    indices = xp.asarray(indices)
    return tuple(indices[..., i] for i in range(indices.shape[-1]))


class ScatterNd(Operation):
    """zeros(shape) with `updates` added at the index tuples of `indices` (repeats sum)."""

    op_type = "scatter_nd"

    def forward(self, xp, indices, updates):
        updates = xp.asarray(updates)
        out = xp.zeros(self.attrs["shape"], dtype=updates.dtype)
        scatter_add(xp, out, _nd_key(xp, indices), updates)
        return out

    def infer_shape(self, indices, updates):
        return self.attrs["shape"]

    def infer_dtype(self, indices, updates):
        return known_dtype(updates)


@RegisterGradient("scatter_nd")
def _scatter_nd_grad(op, g):
    indices = op.inputs[0]
    return None, g[_nd_key(op.xp, indices)]


def scatter_nd(indices, updates, shape, name=None):
    """A tensor of `shape`, zero but for `updates` added at `indices` (index tuples in the
    last dimension; updates.shape == indices.shape[:-1] + shape[indices.shape[-1]:])."""
    shape = int_list(shape, "scatter_nd: shape")
    indices_shape, updates_shape = static_shape_of(indices), static_shape_of(updates)
    if indices_shape.rank is not None and updates_shape.rank is not None:
        depth = indices_shape[-1] if indices_shape.rank else None
        if depth is not None:
            expected = TensorShape([*indices_shape[:-1], *shape[depth:]])
            if depth > len(shape) or not expected.is_compatible_with(updates_shape):
                raise ValueError(
                    f"scatter_nd: updates of shape {format_shape(updates_shape)} do not fit "
                    f"indices {format_shape(indices_shape)} into shape {shape}"
                )
    return ScatterNd([indices, updates], name=name or "ScatterNd", shape=shape)


class BroadcastTo(Operation):
    """The input broadcast (numpy's rules) to a shape: the attr, or input 1 when only a run
    can tell it (the attr then keeps the known entries, None elsewhere)."""

    op_type = "broadcast_to"

    def forward(self, xp, x, shape=None):
        target = self.attrs["shape"] if shape is None else [int(d) for d in shape.tolist()]
        # A copy: numpy's broadcast view is read-only and aliases its input.
        return xp.array(xp.broadcast_to(x, target))

    def infer_shape(self, shape, target_shape=None):
        return self.attrs["shape"]

    def infer_dtype(self, dtype, target_dtype=None):
        return known_dtype(dtype)


@RegisterGradient("broadcast_to")
def _broadcast_to_grad(op, g):
    # Summed back onto the input's shape by the central un-broadcast.
    return (g,) + (None,) * (len(op.inputs) - 1)


def broadcast_to(input, shape, name=None):  # noqa: A002 - TF-1's keyword names
    """`input` broadcast to `shape` (numpy's rules: size-1 and missing leading dims stretch);
    `shape` may be a node (`tf.shape(y)`) or a list holding scalar nodes."""
    known, shape_node = int_vector(shape, "broadcast_to: shape")
    given = static_shape_of(input)
    if known is not None:
        try:
            TensorShape(known).merge_with(_broadcast(given, known))
        except ValueError:
            raise ValueError(
                f"broadcast_to: cannot broadcast a tensor of shape {format_shape(given)} to "
                f"{format_shape(known)}"
            ) from None
    inputs = [input] if shape_node is None else [input, shape_node]
    return BroadcastTo(inputs, name=name or "BroadcastTo", shape=known)


def _broadcast(given: TensorShape, shape: list) -> TensorShape:
    result = broadcast_shape(given, shape)
    if result.rank is not None and result.rank != len(shape):
        raise ValueError("rank grows")
    return result
