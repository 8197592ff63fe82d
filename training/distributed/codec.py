"""Arrays as bytes (the socket all-gather) or text (`allGather`, results to the driver).

A message is `PCA1 <JSON header>\n<the arrays' raw bytes, concatenated>`; as text the raw
bytes are base64. The header lists each array's dtype and shape and any JSON metadata;
decoding checks both against the payload. No pickle: a message read back can hold nothing
but numbers.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import numpy as np

__all__ = ["MessageError", "decode", "encode", "pack", "unpack"]

_MAGIC = "PCA1 "
# Little-endian numeric types only: an allowed dtype can never carry objects.
_DTYPES = {"<f4", "<f8", "<i4", "<i8"}


class MessageError(ValueError):
    """A message that is not what `encode` writes; the text says what is wrong."""


def pack(arrays: list[np.ndarray], meta: dict[str, Any] | None = None) -> bytes:
    """One bytes message holding `arrays` (numeric, any shape) and JSON-able `meta`."""
    specs, chunks = [], []
    for a in arrays:
        a = np.ascontiguousarray(a)
        dtype = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        if dtype.str not in _DTYPES:
            raise MessageError(f"cannot send an array of dtype {a.dtype}; use float32/64, int32/64")
        specs.append({"dtype": dtype.str, "shape": list(a.shape)})
        chunks.append(a.astype(dtype, copy=False).tobytes())
    header = json.dumps({"arrays": specs, "meta": meta or {}}, allow_nan=False)
    return b"".join([_MAGIC.encode(), header.encode(), b"\n", *chunks])


def unpack(message: bytes) -> tuple[list[np.ndarray], dict[str, Any]]:
    """(arrays, meta) of a message written by `pack`; MessageError for anything else."""
    magic = _MAGIC.encode()
    if not isinstance(message, (bytes, bytearray, memoryview)) or bytes(message[:5]) != magic:
        raise MessageError(f"not an array message (starts {bytes(message[:16])!r})")
    end = bytes(message[: 1 << 20]).find(b"\n") if len(message) else -1
    if end < 0:
        raise MessageError("array message has no header line")
    try:
        header = json.loads(bytes(message[len(magic) : end]).decode())
        specs, meta = header["arrays"], header["meta"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise MessageError(f"array message is corrupt: {exc}") from None
    data = memoryview(message)[end + 1 :]
    arrays, offset = [], 0
    for spec in specs:
        dtype = spec.get("dtype") if isinstance(spec, dict) else None
        if dtype not in _DTYPES:
            raise MessageError(f"array message names dtype {dtype!r}; allowed: {sorted(_DTYPES)}")
        shape = tuple(int(d) for d in spec["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        size = count * np.dtype(dtype).itemsize
        if offset + size > len(data):
            raise MessageError(f"array message is truncated: {len(data)} bytes for {specs}")
        arrays.append(np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape))
        offset += size
    if offset != len(data):
        raise MessageError(f"array message has {len(data) - offset} bytes beyond its arrays")
    return arrays, meta


def encode(arrays: list[np.ndarray], meta: dict[str, Any] | None = None) -> str:
    """`pack` as text (base64), for channels that carry strings only."""
    return base64.b64encode(pack(arrays, meta)).decode("ascii")


def decode(message: str) -> tuple[list[np.ndarray], dict[str, Any]]:
    """(arrays, meta) of a message written by `encode`; MessageError for anything else."""
    if not isinstance(message, str):
        raise MessageError(f"expected a text message, got {type(message).__name__}")
    try:
        raw = base64.b64decode(message, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MessageError(f"not an array message: not base64 ({exc})") from None
    return unpack(raw)
