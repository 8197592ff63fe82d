"""Parity suite fixtures: real TensorFlow (compat.v1, graph mode) next to the engine.

Every test here runs one TF-1 program on both `engine` and `tensorflow.compat.v1`; without
TensorFlow installed (`pip install -e '.[parity]'`, or `make test-parity`) the whole directory
skips, saying so.
"""

from __future__ import annotations

import os

import pytest

# TensorFlow's C++ start-up banners and oneDNN notices are noise in test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session", autouse=True)
def _needs_tensorflow():
    # In a fixture, not at import: a Skipped raised while pytest loads this conftest as an
    # initial one (`pytest tests/parity`) aborts the run instead of skipping.
    pytest.importorskip(
        "tensorflow",
        reason="the parity suite compares the engine with real TensorFlow: install it with "
        "`pip install -e '.[parity]'` (make test-parity does)",
    )


@pytest.fixture(scope="session")
def tfv1():
    """`tensorflow.compat.v1`; programs build inside their own `tfv1.Graph()` (graph mode)."""
    import tensorflow as tensorflow

    return tensorflow.compat.v1


@pytest.fixture(scope="session")
def eng():
    """The engine, spelled like TensorFlow: `import engine as tf`."""
    import engine

    return engine


@pytest.fixture(params=["engine", "tensorflow"])
def tf(request, eng, tfv1):
    """Each implementation in turn, for behaviour checks both must pass (TF checks the test)."""
    return eng if request.param == "engine" else tfv1
