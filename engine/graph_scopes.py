"""Name scopes and control dependencies: the two per-graph contexts TF-1 code opens.

`Graph.name_scope(name)` prefixes the names of nodes created inside; `Graph.control_dependencies`
makes nodes created inside run after the given ones.  Both keep their state on the graph.
"""

from __future__ import annotations

__all__ = ["ControlDependencies", "NameScope"]


class NameScope:
    def __init__(self, graph, name: str | None) -> None:
        self._graph = graph
        self._name = name

    def __enter__(self) -> str:
        graph = self._graph
        self._previous = graph._scope
        name = self._name
        if not name:
            scope = ""
        elif name.endswith("/"):
            scope = name
        else:
            base = graph._scope + name
            unique, count = base, 0
            while unique in graph._used_scopes or unique in graph._by_name:
                count += 1
                unique = f"{base}_{count}"
            graph._used_scopes.add(unique)
            scope = unique + "/"
        graph._scope = scope
        return scope

    def __exit__(self, *exc: object) -> None:
        self._graph._scope = self._previous


class ControlDependencies:
    def __init__(self, graph, control_inputs) -> None:
        self._graph = graph
        self._inputs = None if control_inputs is None else _control_nodes(graph, control_inputs)

    def __enter__(self) -> None:
        stack = self._graph._control_stack
        self._saved = list(stack)
        if self._inputs is None:
            stack.clear()
        else:
            stack.append(self._inputs)

    def __exit__(self, *exc: object) -> None:
        self._graph._control_stack[:] = self._saved


def _control_nodes(graph, values) -> list:
    nodes = []
    for value in values:
        if isinstance(value, str):
            value = graph.get_tensor_by_name(value)
        if not hasattr(value, "input_nodes"):  # a graph node
            raise TypeError(f"control_dependencies: {value!r} is not a graph node")
        nodes.append(value)
    return nodes
