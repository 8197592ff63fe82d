"""One-line error messages for the pipeline's commands and run summaries."""

from __future__ import annotations

__all__ = ["error_line"]


def error_line(exc: BaseException) -> str:
    """`Type: message` on one line; for a multi-line (Spark, Python worker) error, the last
    line that names an error, which is where the cause is."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if len(lines) <= 1:
        return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    causes = [ln for ln in lines if "Error:" in ln and not ln.startswith("File ")]
    return f"{type(exc).__name__}: {causes[-1] if causes else lines[0]}"
