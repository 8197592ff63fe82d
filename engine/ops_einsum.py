"""einsum (TF-1's `tf.einsum(equation, *inputs)`) with an einsum-based gradient.

Re-exported by `ops_array`, whose `__all__` reaches `tf.*`.
"""

from __future__ import annotations

from engine.autodiff import RegisterGradient
from engine.graph import Operation
from engine.shape_rules import checked
from engine.shapes import TensorShape, as_shape

__all__ = ["einsum"]


def _parse(equation: str, n_inputs: int) -> tuple[list[str], str]:
    """(input subscripts, output subscripts) of an explicit or implicit equation."""
    equation = equation.replace(" ", "")
    if "->" in equation:
        lhs, output = equation.split("->")
    else:  # implicit mode: the letters used exactly once, in alphabetical order
        lhs = equation
        letters = lhs.replace(",", "").replace(".", "")
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
        if "..." in lhs:
            output = "..." + output
    inputs = lhs.split(",")
    if len(inputs) != n_inputs:
        raise ValueError(
            f"einsum: equation {equation!r} names {len(inputs)} inputs, got {n_inputs} tensors"
        )
    return inputs, output


class Einsum(Operation):
    op_type = "einsum"

    def forward(self, xp, *values):
        return xp.einsum(self.equation, *values)

    def infer_shape(self, *input_shapes):
        inputs, output = _parse(self.attrs["equation"], len(input_shapes))
        if "." in "".join(inputs) + output:
            shapes = [as_shape(s) for s in input_shapes]
            if any(s.rank is None for s in shapes):
                return TensorShape(None)
            inputs, output = _spell_out_ellipsis(inputs, output, shapes, check=False)
        sizes: dict[str, int | None] = {}
        for subscripts, shape in zip(inputs, input_shapes, strict=True):
            shape = as_shape(shape)
            if shape.rank is None:
                continue
            if len(shape) != len(subscripts):
                raise ValueError(
                    f"einsum {self.name!r}: operand subscripts {subscripts!r} do not match "
                    f"its shape {shape}"
                )
            for letter, dim in zip(subscripts, shape, strict=True):
                known = sizes.get(letter)
                if dim is not None and known is not None and known != dim and 1 not in (dim, known):
                    raise ValueError(
                        f"einsum {self.name!r}: dimension {letter!r} is {known} in one operand "
                        f"and {dim} in another (equation {self.attrs['equation']!r})"
                    )
                if known is None or known == 1:
                    sizes[letter] = dim
        if any(letter not in sizes for letter in output):
            return TensorShape(None)
        return TensorShape([sizes[letter] for letter in output])


def einsum(equation, *inputs, **kwargs):
    """Tensor contraction by Einstein summation, e.g. "ij,jk->ik", "bi,bi->b", "bij,bjk->bik",
    "ij->ji", "bd,nd->bn"."""
    name = kwargs.pop("name", None)
    if kwargs:
        raise TypeError(f"einsum: unexpected keyword arguments {sorted(kwargs)}")
    if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
        inputs = tuple(inputs[0])
    _parse(equation, len(inputs))
    op = Einsum(list(inputs), name=name, equation=str(equation).replace(" ", ""))
    return checked(op)


def _spell_out_ellipsis(inputs, output, shapes, check=True):
    """The equation with each '...' replaced by letters of its own (right-aligned, as numpy
    broadcasts them); NotImplementedError where '...' dimensions broadcast 1 against n."""
    used = set("".join(inputs) + output)
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used]
    counts = [
        len(shape) - (len(sub) - 3)
        for sub, shape in zip(inputs, shapes, strict=True)
        if "..." in sub
    ]
    letters = "".join(spare[: max(counts, default=0)])
    sizes: dict[str, int] = {}
    spelled = []
    for sub, shape in zip(inputs, shapes, strict=True):
        if "..." in sub:
            count = len(shape) - (len(sub) - 3)
            sub = sub.replace("...", letters[len(letters) - count :])
        for letter, dim in zip(sub, shape, strict=True):
            if check and sizes.setdefault(letter, dim) != dim:
                raise NotImplementedError(
                    "einsum gradient: '...' dimensions that broadcast are not supported"
                )
        spelled.append(sub)
    return spelled, output.replace("...", letters)


@RegisterGradient("einsum")
def _einsum_grad(op, g):
    # d out / d input k: contract g with every other operand onto input k's subscripts.
    # Letters of input k that appear nowhere else were summed away: the gradient is constant
    # along them, so contract onto the rest and broadcast back.
    xp = op.xp
    inputs, output = _parse(op.op.attrs["equation"], len(op.inputs))
    if "." in "".join(inputs) + output:
        inputs, output = _spell_out_ellipsis(inputs, output, [xp.shape(v) for v in op.inputs])
    grads = []
    for k, target in enumerate(inputs):
        if not op.need[k]:
            grads.append(None)
            continue
        if len(set(target)) != len(target):
            raise NotImplementedError(
                f"einsum gradient: repeated subscripts in one operand ({target!r})"
            )
        others = [(s, v) for i, (s, v) in enumerate(zip(inputs, op.inputs, strict=True)) if i != k]
        available = set(output).union(*(set(s) for s, _ in others))
        kept = "".join(c for c in target if c in available)
        spec = ",".join([output] + [s for s, _ in others]) + "->" + kept
        partial = xp.einsum(spec, g, *[v for _, v in others])
        value = op.inputs[k]
        expanded = partial.reshape(
            [value.shape[i] if c in available else 1 for i, c in enumerate(target)]
        )
        grads.append(xp.broadcast_to(expanded, value.shape).astype(value.dtype, copy=False))
    return tuple(grads)
