"""Session: runs a graph on numpy or CuPy; variables and optimizer state live per session.

Hot path: `Session.run` looks up a cached `Plan` (engine/plan.py) for (fetch structure, fed
nodes) and runs its flat list of step closures over one per-run list of values.  TF-1's
signature: `Session(target="", graph=None, config=None)`; the engine adds `device` and `seed`.
"""

from __future__ import annotations

import threading

import numpy as np

from engine.backend import array_module, make_rng, resolve_device, to_numpy
from engine.errors import FeedError, GraphError
from engine.graph import Constant, Graph, Variable, get_default_graph
from engine.plan import Plan, UpdateNode, fetch_key, uninitialized
from engine.sparse_tensor import expand_sparse_feeds

__all__ = [
    "ConfigProto",
    "GPUOptions",
    "InteractiveSession",
    "Session",
    "UpdateNode",
    "get_default_session",
    "global_variables_initializer",
]


class _InitializeVariables(UpdateNode):
    op_type = "init"

    def __init__(self, graph: Graph) -> None:
        super().__init__("init", graph)
        self.graph.meta_nodes.append(self)

    def make_step(self, session, slots):
        def step(v):
            session.initialize_variables()

        return step


def global_variables_initializer() -> UpdateNode:
    """A node that (re)initialises every variable of the default graph when run."""
    return _InitializeVariables(get_default_graph())


class GPUOptions:
    """TF-1's GPUOptions: accepted (allow_growth, ...) and kept; the engine needs none."""

    def __init__(self, **options) -> None:
        self.__dict__.update(options)


class ConfigProto:
    """TF-1's session ConfigProto: every option is accepted and kept; none changes a run
    (threads: set OMP/OPENBLAS_NUM_THREADS; devices: `Session(device=...)`)."""

    def __init__(self, gpu_options=None, **options) -> None:
        self.gpu_options = gpu_options if gpu_options is not None else GPUOptions()
        self.__dict__.update(options)


_default_sessions = threading.local()


def _session_stack() -> list:
    stack = getattr(_default_sessions, "stack", None)
    if stack is None:
        stack = _default_sessions.stack = []
    return stack


def get_default_session():
    """The innermost session entered with `with` (or `as_default()`) in this thread, or None."""
    stack = _session_stack()
    return stack[-1] if stack else None


class Session:
    """Runs fetches of one graph; holds that graph's variable values and optimizer state.

    `graph` (also accepted in `target`'s place, as the engine always did) defaults to the
    default graph; `config` is accepted as TF-1's.  `device`: "cpu" (numpy) or "gpu" (CuPy);
    default from $PEPPERCORN_DEVICE, else cpu.  `seed` seeds the session's random stream
    (dropout); default: the graph's `seed`.  Inside `with Session() as sess:`, `tensor.eval()`
    uses it, as in TF-1.
    """

    def __init__(
        self, target="", graph: Graph | None = None, config=None, device=None, seed=None
    ) -> None:
        if isinstance(target, Graph):
            target, graph = "", target if graph is None else graph
        if target not in ("", None):
            raise ValueError(f"Session: target {target!r}: the engine runs in process only")
        self.config = config
        self.graph = graph if graph is not None else get_default_graph()
        self.device = resolve_device(device)
        self.xp = array_module(self.device)
        self.rng = make_rng(self.xp, seed if seed is not None else self.graph.seed)
        self._values: dict[Variable, object] = {}
        self._constants: dict[Constant, object] = {}
        self.optimizer_state: dict[object, dict] = {}
        self._plans: dict = {}
        self._version = self.graph.version
        self._closed = False

    def __enter__(self) -> Session:
        _session_stack().append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        stack = _session_stack()
        if stack and stack[-1] is self:
            stack.pop()
        self.close()

    def as_default(self) -> _DefaultSession:
        """A context manager making this the default session (without closing it on exit)."""
        return _DefaultSession(self)

    def close(self) -> None:
        """Free the session's state; later runs raise."""
        self._values.clear()
        self._constants.clear()
        self.optimizer_state.clear()
        self._plans.clear()
        self._closed = True

    def run(self, fetches, feed_dict=None, options=None, run_metadata=None):
        """Values of `fetches` (a node or its name, or lists, tuples, namedtuples and dicts of
        them) in one pass; feed_dict keys are nodes or names ("x:0")."""
        if self._closed:
            raise GraphError("this Session is closed")
        if self.graph.version != self._version:
            self._plans.clear()
            self._version = self.graph.version
        if feed_dict:
            feed_dict = expand_sparse_feeds(feed_dict)
            if any(type(k) is str for k in feed_dict):
                feed_dict = {self._feed_node(k): value for k, value in feed_dict.items()}
            fed = frozenset(feed_dict)
        else:
            fed = frozenset()
        key = (fetch_key(fetches), fed)
        plan = self._plans.get(key)
        if plan is None:
            plan = Plan(self, fetches, fed)
            self._plans[key] = plan
        return plan.execute(self, feed_dict)

    def _feed_node(self, key):
        if type(key) is not str:
            return key
        try:
            return self.graph.get_tensor_by_name(key)
        except KeyError as exc:
            raise FeedError(f"feed_dict key {key!r}: {exc.args[0]}") from None

    def initialize_variables(self, variables=None) -> None:
        """(Re)set variables (default: all of the graph) to their initial values."""
        for var in self.graph.variables if variables is None else variables:
            self._assign(var, var.initial_value)
        if variables is None:
            self.optimizer_state.clear()

    def get_value(self, var: Variable) -> np.ndarray:
        """A numpy copy of `var`'s current value in this session."""
        self._check_variable(var)
        self._ensure_initialized(var)
        return np.array(to_numpy(self._values[var]), copy=True)

    def set_value(self, var: Variable, value) -> None:
        """Overwrite `var`'s value (same shape; cast to its dtype), e.g. from a checkpoint."""
        self._check_variable(var)
        value = np.asarray(to_numpy(value))
        if value.shape != var.shape:
            raise ValueError(
                f"set_value: variable {var.name!r} has shape {var.shape}, got {value.shape}"
            )
        self._assign(var, value)

    def _assign(self, var: Variable, value) -> None:
        # In place when possible: optimizers may hold the stored array as a view.
        current = self._values.get(var)
        if current is None:
            self._values[var] = self.xp.array(value, dtype=var.dtype, copy=True)
        else:
            current[...] = self.xp.asarray(value)

    def _check_variable(self, var) -> None:
        if self._closed:
            raise GraphError("this Session is closed")
        if not isinstance(var, Variable) or var.graph is not self.graph:
            raise GraphError(f"{var!r} is not a variable of this session's graph")

    def _ensure_initialized(self, var: Variable) -> None:
        """Raise FailedPreconditionError unless `var` has a value in this session (TF-1)."""
        if var not in self._values:
            raise uninitialized(var)

    def _device_constant(self, node: Constant):
        value = node.value
        if isinstance(value, np.ndarray) and self.xp is not np:
            if node not in self._constants:
                self._constants[node] = self.xp.asarray(value)
            return self._constants[node]
        return value

    def _convert_feed(self, node, value, dtype, fixed, rank):
        xp = self.xp
        if type(value) is not xp.ndarray or (dtype is not None and value.dtype != dtype):
            try:
                value = xp.asarray(value, dtype=dtype)
            except (TypeError, ValueError) as exc:
                raise FeedError(f"cannot feed {node.name!r} as {dtype}: {exc}") from None
        if rank is not None:
            shape = value.shape
            if len(shape) != rank or any(shape[a] != d for a, d in fixed):
                expected = tuple(node.shape)
                raise FeedError(f"placeholder {node.name!r} expects shape {expected}, fed {shape}")
        return value


class _DefaultSession:
    def __init__(self, session: Session) -> None:
        self._session = session

    def __enter__(self) -> Session:
        _session_stack().append(self._session)
        return self._session

    def __exit__(self, *exc: object) -> None:
        stack = _session_stack()
        if stack and stack[-1] is self._session:
            stack.pop()


class InteractiveSession(Session):
    """A session that makes itself the default when created (TF-1's, for notebooks)."""

    def __init__(self, target="", graph=None, config=None, device=None, seed=None) -> None:
        super().__init__(target, graph, config, device, seed)
        _session_stack().append(self)

    def close(self) -> None:
        stack = _session_stack()
        if self in stack:
            stack.remove(self)
        super().close()
