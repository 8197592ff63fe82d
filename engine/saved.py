"""Saved graphs: a directory with the graph as JSON, tensors as .npz and a checksummed manifest.

Layout (format version 1; README "Saved format" has the details):

- `graph.json`: `{"nodes": [...], "signatures": {...}, "seed"}`, nodes in topological order;
- `variables.npz` (variable values) and `constants.npz` (constant values), read back with
  `allow_pickle=False`;
- `assets/<relative path>`: extra files given to `save`;
- `manifest.json`: `{"format", "format_version", "created_at", "files": {path: "sha256:<hex>"},
  "checksum": "sha256:<hex>"}`, where `checksum` is the sha256 of the lines
  `"<path>\\n<hex>\\n"` over every file in sorted path order.

A save is atomic: everything goes into a temporary sibling directory that is renamed onto the
target.  An existing target is refused (model versions are immutable), so a reader sees
either no directory or a complete one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import numpy as np

from engine.errors import (
    ChecksumError,
    FormatVersionError,
    MissingVariableError,
    SavedGraphError,
    UnknownOpError,
)
from engine.graph import (
    OP_TYPES,
    Constant,
    Graph,
    Node,
    Operation,
    Placeholder,
    Variable,
    topological_order,
)
from engine.session import Session
from engine.signatures import SavedGraph, SignatureError, as_node, signature_records

__all__ = [
    "FORMAT_VERSION",
    "ChecksumError",
    "FormatVersionError",
    "MissingVariableError",
    "SavedGraph",
    "SavedGraphError",
    "SignatureError",
    "UnknownOpError",
    "deserialize",
    "load",
    "save",
    "serialize",
    "verify",
]

FORMAT_NAME = "peppercorn.saved_graph"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_TENSOR_FILES = ("graph.json", "variables.npz", "constants.npz")


def _node_record(node: Node, session: Session, variables: dict, constants: dict) -> dict:
    record = {"name": node.name, "op_type": node.op_type}
    if isinstance(node, Placeholder):
        record["dtype"] = None if node.dtype is None else node.dtype.name
        record["shape"] = None if node.shape.rank is None else list(node.shape)
    elif isinstance(node, Variable):
        variables[node.name] = session.get_value(node)
        record["trainable"] = node.trainable
    elif isinstance(node, Constant):
        weak = not isinstance(node.value, np.ndarray)
        constants[node.name] = np.asarray(node.value)
        record["weak"] = weak  # a Python scalar: loaded back as one, so it never upcasts
    elif isinstance(node, Operation):
        if OP_TYPES.get(node.op_type) is not type(node):
            raise SavedGraphError(
                f"op {node.name!r} of class {type(node).__name__} is not the "
                f"registered class for op type {node.op_type!r}; cannot save it"
            )
        try:
            json.dumps(node.attrs, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise SavedGraphError(
                f"op {node.name!r} ({node.op_type}): attrs {node.attrs!r} are not JSON-able: {exc}"
            ) from None
        record["inputs"] = [i.name for i in node.input_nodes]
        record["attrs"] = node.attrs
    else:
        raise SavedGraphError(f"cannot save node {node.name!r} ({node.op_type})")
    return record


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _checksums(files: Mapping[str, bytes]) -> tuple[dict[str, str], str]:
    digests = {rel: "sha256:" + hashlib.sha256(files[rel]).hexdigest() for rel in sorted(files)}
    listing = "".join(f"{rel}\n{digest[7:]}\n" for rel, digest in digests.items())
    return digests, "sha256:" + hashlib.sha256(listing.encode()).hexdigest()


def _relative_path(name: str, what: str) -> str:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or str(path) != name or "\\" in name:
        raise SavedGraphError(f"{what} {name!r} must be a relative POSIX path without '..'")
    return name


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def serialize(
    session: Session,
    signatures: Mapping,
    *,
    assets: Mapping[str, bytes] | None = None,
    extra_nodes=(),
) -> dict[str, bytes]:
    """Every file of a saved graph, manifest included, as relative path -> bytes.

    What `save` writes; a store other than a local directory (an object store, a model
    repository over `pyarrow.fs`) writes these files itself, `MANIFEST` last.
    """
    sig_records, fetches = signature_records(session, signatures)
    fetches += [as_node(session.graph, n, "extra_nodes") for n in extra_nodes]
    variables, constants = {}, {}
    nodes = [_node_record(n, session, variables, constants) for n in topological_order(fetches)]
    graph_json = {"nodes": nodes, "signatures": sig_records, "seed": session.graph.seed}
    files = {
        "graph.json": json.dumps(graph_json, indent=1, allow_nan=False).encode(),
        "variables.npz": _npz_bytes(variables),
        "constants.npz": _npz_bytes(constants),
    }
    for name, data in (assets or {}).items():
        if not isinstance(data, (bytes, bytearray)):
            raise SavedGraphError(f"asset {name!r} must be bytes, got {type(data).__name__}")
        files["assets/" + _relative_path(name, "asset name")] = bytes(data)
    digests, checksum = _checksums(files)
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": digests,
        "checksum": checksum,
    }
    files[MANIFEST] = json.dumps(manifest, indent=1).encode()
    return files


def save(
    path: str | os.PathLike,
    session: Session,
    signatures: Mapping,
    *,
    assets: Mapping[str, bytes] | None = None,
    extra_nodes=(),
) -> Path:
    """Save what `signatures` (and `extra_nodes`) need from `session`'s graph, atomically.

    `signatures`: `{name: {"inputs": {key: placeholder}, "outputs": {key: node}}}`; nodes may
    be given by name; an output may be `{"node": n, "dtype": ..., "shape": [...]}` when a run
    on a zero batch cannot find them.  Variables are saved with their values in `session`.
    `assets` (relative path -> bytes) land under `assets/`.  Returns the target path.
    """
    target = Path(os.fspath(path))
    if target.exists():
        raise SavedGraphError(f"save target {target} already exists; saved graphs are immutable")
    files = serialize(session, signatures, assets=assets, extra_nodes=extra_nodes)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        for rel, data in files.items():
            _write_file(staging / rel, data)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


# ---- load ---------------------------------------------------------------------------------


def _read_manifest(files: Mapping[str, bytes], where: str) -> dict:
    manifest_path = f"{where}/{MANIFEST}"
    if MANIFEST not in files:
        raise SavedGraphError(f"{where} is not a saved graph: {MANIFEST} is missing")
    try:
        manifest = json.loads(files[MANIFEST])
        version, listed, checksum = (manifest[k] for k in ("format_version", "files", "checksum"))
    except (ValueError, KeyError, TypeError) as exc:
        raise SavedGraphError(f"{manifest_path} is not a valid manifest: {exc!r}") from None
    if manifest.get("format") != FORMAT_NAME:
        raise SavedGraphError(
            f"{manifest_path}: format {manifest.get('format')!r}, expected {FORMAT_NAME!r}"
        )
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise FormatVersionError(
            f"{where} has format version {version!r}; this reader supports "
            f"versions 1 to {FORMAT_VERSION}: upgrade peppercorn to load it"
        )
    if not isinstance(listed, dict) or not isinstance(checksum, str):
        raise SavedGraphError(f"{manifest_path}: 'files' must be an object, 'checksum' a string")
    return manifest


def verify(files: Mapping[str, bytes], where: str) -> dict[str, bytes]:
    """Check a saved graph's files (relative path -> bytes, `MANIFEST` included) against its
    manifest; returns the files it covers. Raises naming the file that is missing, extra or
    changed."""
    manifest = _read_manifest(files, where)
    listed = manifest["files"]
    for rel in _TENSOR_FILES:
        if rel not in listed:
            raise SavedGraphError(f"{where}/{MANIFEST} does not list {rel}")
    unlisted = sorted(set(files) - set(listed) - {MANIFEST})
    if unlisted:
        raise ChecksumError(f"{where} holds files the manifest does not cover: {unlisted}")
    for rel in listed:
        _relative_path(rel, "manifest entry")
        if rel not in files:
            raise ChecksumError(f"{where}: {rel} is listed in the manifest but missing")
    covered = {rel: files[rel] for rel in listed}
    digests, checksum = _checksums(covered)
    for rel, digest in digests.items():
        if digest != listed[rel]:
            raise ChecksumError(
                f"checksum mismatch for {where}/{rel}: the manifest says "
                f"{listed[rel]}, the file hashes to {digest}"
            )
    if checksum != manifest["checksum"]:
        raise ChecksumError(
            f"checksum mismatch for {where}: the manifest says "
            f"{manifest['checksum']}, its files give {checksum}"
        )
    return covered


def _local_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _read_npz(data: bytes, where: str) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise SavedGraphError(f"{where}: cannot read without pickle: {exc}") from None
    except Exception as exc:
        raise SavedGraphError(f"{where} is not a valid .npz file: {exc}") from None


def _build_node(record: dict, built: dict, variables: dict, constants: dict, where: str) -> Node:
    name, op_type = record["name"], record["op_type"]
    if op_type == "placeholder":
        return Placeholder(record["dtype"], record["shape"], name=name)
    if op_type in ("variable", "constant"):
        values, file = (
            (variables, "variables.npz") if op_type == "variable" else (constants, "constants.npz")
        )
        if name not in values:
            raise MissingVariableError(f"{where}/{file} has no value for {op_type} {name!r}")
        if op_type == "variable":
            return Variable(values[name], name=name, trainable=record["trainable"])
        value = values[name].item() if record.get("weak") else values[name]
        return Constant(value, name=name)
    if op_type not in OP_TYPES:
        raise UnknownOpError(
            f"{where}/graph.json: node {name!r} has op type {op_type!r}, which is "
            "not registered here; import the module defining it before load()"
        )
    try:
        inputs = [built[i] for i in record["inputs"]]
    except KeyError as exc:
        raise SavedGraphError(
            f"{where}/graph.json: node {name!r} reads {exc.args[0]!r}, which "
            "is not defined before it"
        ) from None
    return Operation.from_attrs(op_type, inputs, record["attrs"], name=name)


def deserialize(files: Mapping[str, bytes], where: str, *, device: str | None = None) -> SavedGraph:
    """A saved graph from its files (relative path -> bytes, as `serialize` gives them):
    checksums verified, graph rebuilt, a Session (on `device`) holding the saved variables.
    `where` names the source in errors and becomes `SavedGraph.path`."""
    files = verify(files, where)
    variables = _read_npz(files["variables.npz"], f"{where}/variables.npz")
    constants = _read_npz(files["constants.npz"], f"{where}/constants.npz")
    try:
        graph_json = json.loads(files["graph.json"])
        records, signatures = graph_json["nodes"], graph_json["signatures"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SavedGraphError(f"{where}/graph.json is not a valid saved graph: {exc!r}") from None
    graph = Graph()
    graph.seed = graph_json.get("seed")
    built: dict[str, Node] = {}
    with graph.as_default():
        for position, record in enumerate(records):
            try:
                built[record["name"]] = _build_node(record, built, variables, constants, where)
            except SavedGraphError:
                raise
            except (KeyError, TypeError, ValueError) as exc:
                raise SavedGraphError(
                    f"{where}/graph.json: node #{position} ({str(record)[:120]}) cannot be "
                    f"rebuilt: {type(exc).__name__}: {exc}"
                ) from None
    for sig_name, sig in signatures.items():
        for spec in list(sig["inputs"].values()) + list(sig["outputs"].values()):
            if spec["name"] not in built:
                raise SavedGraphError(
                    f"{where}: signature {sig_name!r} names missing node {spec['name']!r}"
                )
    assets = {
        rel[len("assets/") :]: data for rel, data in files.items() if rel.startswith("assets/")
    }
    session = Session(graph, device=device)
    session.initialize_variables()  # a saved variable's initial value is its saved value
    return SavedGraph(where, graph, session, signatures, assets)


def load(path: str | os.PathLike, *, device: str | None = None) -> SavedGraph:
    """Load a saved graph from a local directory: check format version and checksums, rebuild
    the graph, and return it with a Session (on `device`, default cpu/$PEPPERCORN_DEVICE)
    holding the saved variables."""
    root = Path(os.fspath(path))
    if not root.is_dir():
        raise SavedGraphError(f"no saved graph at {root}: not a directory")
    saved = deserialize(_local_files(root), str(root), device=device)
    saved.path = root
    return saved
