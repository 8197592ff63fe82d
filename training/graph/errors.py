"""Errors raised by the graph engine; each message names the node(s) and what is wrong."""

from __future__ import annotations

__all__ = ["FeedError", "GraphError", "NoGradientError", "OpExecutionError"]


class GraphError(ValueError):
    """A graph that cannot be built or run as asked (wrong graph, cycle, bad fetch)."""


class FeedError(GraphError):
    """A placeholder that is missing from feed_dict, or fed a value of the wrong shape/dtype."""


class OpExecutionError(GraphError):
    """An op (or its gradient) failed while running; names the op, its type and input shapes."""


class NoGradientError(GraphError, LookupError):
    """An op on the path between variables and loss has no registered gradient."""
