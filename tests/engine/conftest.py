"""Graph-engine fixtures: the backend every engine test runs on, and a fresh default graph."""

from __future__ import annotations

import pytest

import engine as tf
from engine.backend import cupy_available


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def device(request) -> str:
    """ "cpu" (numpy) always; "gpu" (CuPy) where CuPy sees a CUDA device, skipped otherwise."""
    if request.param == "gpu" and not cupy_available():
        pytest.skip("CuPy with a CUDA device is not available here")
    return request.param


@pytest.fixture(autouse=True)
def fresh_default_graph():
    """Each test builds in its own default graph; seed code calling Graph().as_default() too."""
    with tf.Graph().as_default() as graph:
        yield graph


@pytest.fixture(scope="session")
def tfv1():
    """tensorflow.compat.v1, the oracle of the engine's TF tests; a skip where TensorFlow is
    not installed (`make test-parity` installs it)."""
    return pytest.importorskip("tensorflow").compat.v1
