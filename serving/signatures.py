"""Signatures in TF Serving's terms: their `signature_def` JSON, and JSON request values as
typed numpy arrays. The specs themselves come from `peppercorn.loaded_version`."""

from __future__ import annotations

from typing import Any

import numpy as np

from peppercorn.loaded_version import SignatureSpec, TensorSpec

__all__ = ["tf_signature_def", "to_array"]

_TF_DTYPES = {
    "float16": "DT_HALF",
    "float32": "DT_FLOAT",
    "float64": "DT_DOUBLE",
    "int8": "DT_INT8",
    "int16": "DT_INT16",
    "int32": "DT_INT32",
    "int64": "DT_INT64",
    "uint8": "DT_UINT8",
    "bool": "DT_BOOL",
    "str": "DT_STRING",
    "object": "DT_STRING",
}


def _tf_tensor(name: str, spec: TensorSpec) -> dict:
    return {
        "dtype": _TF_DTYPES.get(spec.dtype, "DT_INVALID"),
        "tensor_shape": {"dim": [{"size": str(d)} for d in spec.shape]},
        "name": f"{name}:0",
    }


def tf_signature_def(specs: dict[str, SignatureSpec]) -> dict:
    """TF Serving's `signature_def` JSON for a model's signatures."""
    return {
        name: {
            "inputs": {k: _tf_tensor(k, v) for k, v in sig.inputs.items()},
            "outputs": {k: _tf_tensor(k, v) for k, v in sig.outputs.items()},
            "method_name": "tensorflow/serving/predict",
        }
        for name, sig in specs.items()
    }


def to_array(name: str, values: Any, spec: TensorSpec) -> np.ndarray:
    """A JSON value as an array of the spec's dtype and rank; ValueError naming the problem."""
    kind = np.dtype(spec.dtype).kind
    try:
        arr = np.asarray(values)
    except ValueError:
        raise ValueError(f"input {name}: ragged or mixed nested lists") from None
    if arr.ndim != len(spec.shape):
        raise ValueError(f"input {name}: expected rank {len(spec.shape)}, got rank {arr.ndim}")
    for got, want in zip(arr.shape, spec.shape, strict=True):
        if want != -1 and got != want:
            raise ValueError(f"input {name}: expected shape {list(spec.shape)}, got {arr.shape}")
    if arr.size == 0:
        return np.empty(arr.shape, dtype=spec.dtype)
    if kind in "iu":
        # bool is a subclass of int in Python; TF Serving refuses true/false for ints too.
        if arr.dtype.kind not in "iu":
            raise ValueError(f"input {name}: expected integers ({spec.dtype}), got {arr.dtype}")
        info = np.iinfo(spec.dtype)
        if arr.min() < info.min or arr.max() > info.max:
            raise ValueError(f"input {name}: values outside the {spec.dtype} range")
    elif kind == "f":
        if arr.dtype.kind not in "iuf":
            raise ValueError(f"input {name}: expected numbers ({spec.dtype}), got {arr.dtype}")
    return arr.astype(spec.dtype)
