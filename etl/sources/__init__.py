"""One module per input kind: `extract` raw lines, `transform` them into classified frames."""

__all__: list[str] = []
