"""Step closures a compiled plan runs: one per forward op, one per gradient request.

A step takes the run's value list `v` (slot i: node i's value, slot n + i: op i's aux) and
writes its outputs into it.  Arity-specialised closures keep the per-op overhead to one call.
"""

from __future__ import annotations

from engine.autodiff import GradientRequest, OpView, get_gradient_function, unbroadcast
from engine.errors import OpExecutionError
from engine.plan_fusion import NO_CHAINS, DenseChains
from engine.sparse import IndexedSlices, accumulate

__all__ = ["backward_step", "op_step"]


def op_step(fn, out: int, ins: tuple[int, ...], aux: int | None):
    """A step computing v[out] = fn(*inputs) (and v[aux] when the op keeps aux values)."""
    if aux is not None:

        def step_aux(v):
            v[out], v[aux] = fn(*[v[i] for i in ins])

        return step_aux
    if len(ins) == 1:
        (a,) = ins

        def step1(v):
            v[out] = fn(v[a])

        return step1
    if len(ins) == 2:
        a, b = ins

        def step2(v):
            v[out] = fn(v[a], v[b])

        return step2

    def step_n(v):
        v[out] = fn(*[v[i] for i in ins])

    return step_n


def backward_step(
    xp,
    request: GradientRequest,
    order: list,
    slots: dict[int, int],
    fed=frozenset(),
    chains: DenseChains = NO_CHAINS,
):
    """A step filling every gradient node of `request` in `order` from one backward pass.

    A fed node is a leaf of this run: the gradient stops there, as in TF-1 (so the gradient
    with respect to a fed intermediate is what reaches it, and nothing behind it is needed).
    A fused dense chain (`plan_fusion`) is one entry giving its x, W and b gradients at once.
    """
    n = len(order)
    reach = request.reach
    entries = []
    for op in request.backward_ops:
        if op in fed or id(op) not in slots or id(op) in chains.absorbed:
            continue
        chain = chains.by_output.get(id(op))
        if chain is not None:
            entries.append(chain.backward_entry(slots, reach, n + slots[id(op)]))
            continue
        fn = get_gradient_function(op)
        if fn is None:  # declared not differentiable: passes nothing back
            continue
        ins = tuple(slots[id(p)] for p in op.input_nodes)
        need = tuple(id(p) in reach for p in op.input_nodes)
        entries.append((op, fn, slots[id(op)], ins, need, n + slots[id(op)]))
    grad_ys = request.grad_ys or [None] * len(request.ys)
    seeds = [
        (slots[id(y)], None if gy is None else slots[id(gy)])
        for y, gy in zip(request.ys, grad_ys, strict=True)
        if id(y) in reach
    ]
    targets = [
        (slots[id(node)], slots[id(request.xs[node.index])])
        for node in order
        if node.op_type == "gradient" and node.request is request
    ]

    def step(v):
        grads = [None] * n
        for y, gy in seeds:
            seed = xp.ones_like(v[y]) if gy is None else v[gy]
            grads[y] = seed if grads[y] is None else accumulate(xp, grads[y], seed)
        op = None
        try:
            for op, fn, out, ins, need, aux in entries:
                g = grads[out]
                if g is None:
                    continue
                if type(g) is IndexedSlices:
                    g = g.to_dense(xp)
                values = [v[i] for i in ins]
                result = fn(OpView(op, xp, values, v[out], v[aux], need), g)
                if type(result) is not tuple:
                    result = tuple(result) if isinstance(result, list) else (result,)
                for k, i in enumerate(ins):
                    gk = result[k] if need[k] else None
                    if gk is None:
                        continue
                    if type(gk) is not IndexedSlices:
                        shape = getattr(values[k], "shape", ())
                        if gk.shape != shape:
                            gk = unbroadcast(xp, gk, shape)
                    prev = grads[i]
                    grads[i] = gk if prev is None else accumulate(xp, prev, gk)
        except Exception as exc:
            shapes = ", ".join(str(getattr(v[slots[id(p)]], "shape", ())) for p in op.input_nodes)
            raise OpExecutionError(
                f"gradient of op {op.name!r} ({op.op_type}) failed on input shapes [{shapes}]: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        for target, x in targets:
            g = grads[x]
            v[target] = xp.zeros_like(v[x]) if g is None else g

    return step
