"""BLAS thread defaults for the engine's processes (training, serving).

The engine's matmuls are small (a batch of 256 through 64→32→16→8 layers, or one request's
items): multi-threaded BLAS barely helps them on an idle machine, and when any other process
is busy its spinning threads make a step 10-20x slower (measured here: 237k vs 11.6k training
samples/s with one other busy process). So these processes use one BLAS thread unless the
user sets the variables.  Must run before numpy is first imported.
"""

from __future__ import annotations

import os

_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def default_to_one_blas_thread() -> None:
    """Set the BLAS thread variables to 1 where the user has not set them."""
    for name in _VARIABLES:
        os.environ.setdefault(name, "1")
