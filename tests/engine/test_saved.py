"""Saved graphs: round trips give identical outputs; writes are atomic; every kind of broken
directory fails with its own error naming the problem.

Damaged directories are made by hand here (the manifest re-hashed with hashlib following the
documented checksum rule), so the reader's checks are tested independently of the writer.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

import engine as tf
from engine import saved
from engine.graph import OP_TYPES, Operation
from engine.passes import optimize_for_inference
from engine.saved import (
    ChecksumError,
    FormatVersionError,
    MissingVariableError,
    SavedGraphError,
    SignatureError,
    UnknownOpError,
    load,
    save,
)
from tests.engine.test_passes import build_ncf, feed_batch, ncf_numpy


class CubePlusOne(Operation):
    """A user-defined op (seed style: only `compute`), registered when this module loads."""

    op_type = "test_saved_cube_plus_one"

    def compute(self, x):
        return x**3 + self.offset


def trained_ncf(dtype, device="cpu"):
    nodes = build_ncf(dtype)
    session = tf.Session(tf.get_default_graph(), device=device)
    session.run(tf.global_variables_initializer())
    users, items = feed_batch()
    labels = np.array([1, 0, 1, 0], dtype)
    for _ in range(3):
        session.run(
            nodes["train"], {nodes["user"]: users, nodes["item"]: items, nodes["label"]: labels}
        )
    return nodes, session


def serving_signature(nodes) -> dict:
    return {
        "serving_default": {
            "inputs": {"user": nodes["user"], "item": "item_idx"},
            "outputs": {"score": nodes["score"]},
        }
    }


def rewrite_manifest(root: Path, **changes) -> None:
    """Re-hash every file into the manifest as the format documents (sha256 per file, then
    sha256 of the "<path>\\n<hex>\\n" lines in sorted order), then apply `changes`."""
    manifest = json.loads((root / "manifest.json").read_text())
    files = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    )
    digests = {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in files}
    listing = "".join(f"{rel}\n{hexd}\n" for rel, hexd in digests.items())
    manifest["files"] = {rel: f"sha256:{hexd}" for rel, hexd in digests.items()}
    manifest["checksum"] = "sha256:" + hashlib.sha256(listing.encode()).hexdigest()
    manifest.update(changes)
    (root / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_gives_identical_outputs(tmp_path, device, dtype):
    nodes, session = trained_ncf(dtype, device)
    users, items = feed_batch()
    expected = session.run(nodes["score"], {nodes["user"]: users, nodes["item"]: items})
    assets = {"vocab/user_id.json": b'{"tokens": ["<unk>", "1"]}', "metrics.json": b"{}"}

    target = save(tmp_path / "model" / "1", session, serving_signature(nodes), assets=assets)
    loaded = load(str(target), device=device)

    assert target == tmp_path / "model" / "1"
    assert sorted(p.name for p in target.iterdir()) == [
        "assets",
        "constants.npz",
        "graph.json",
        "manifest.json",
        "variables.npz",
    ]
    name = np.dtype(dtype).name
    assert loaded.signatures == {
        "serving_default": {
            "inputs": {
                "user": {"name": "user_idx", "dtype": "int32", "shape": [-1]},
                "item": {"name": "item_idx", "dtype": "int32", "shape": [-1]},
            },
            "outputs": {"score": {"name": "score", "dtype": name, "shape": [-1]}},
            "method_name": "tensorflow/serving/predict",
        }
    }
    assert loaded.assets == assets
    got = loaded.predict("serving_default", {"user": users.tolist(), "item": items})["score"]
    assert got.dtype == dtype
    if device == "cpu":
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    for var in tf.get_default_graph().variables:
        if var.name in {v.name for v in loaded.graph.variables}:
            np.testing.assert_array_equal(
                loaded.session.get_value(loaded.node(var.name)), session.get_value(var)
            )
    # The training graph (labels, loss, Adam) is not needed for serving, so it is not saved.
    assert {p.name for p in loaded.graph.placeholders} == {"user_idx", "item_idx"}


def test_custom_op_and_weak_constants_round_trip(tmp_path):
    x = tf.placeholder(tf.float32, [None, 2], name="x")
    y = tf.multiply(CubePlusOne([x], offset=1.5, name="cube"), 0.5, name="y")  # weak scalar
    session = tf.Session(tf.get_default_graph())
    save(tmp_path / "m", session, {"s": {"inputs": {"x": x}, "outputs": {"y": y}}})

    out = load(tmp_path / "m").predict("s", {"x": [[1.0, 2.0]]})["y"]

    np.testing.assert_array_equal(out, np.array([[1.25, 4.75]], np.float32))
    assert out.dtype == np.float32


def test_inference_graph_from_optimize_for_inference_round_trips(tmp_path):
    nodes, session = trained_ncf(np.float32)
    values = {v.name: session.get_value(v) for v in tf.get_default_graph().variables}
    optimized = optimize_for_inference(session, [nodes["score"]], freeze=False)
    g = optimized.graph
    signature = {
        "serving_default": {
            "inputs": {"user": "user_idx", "item": "item_idx"},
            "outputs": {"score": optimized.outputs["score"]},
        }
    }
    optimized_session = tf.Session(g)
    optimized_session.initialize_variables()
    save(tmp_path / "m", optimized_session, signature)

    loaded = load(tmp_path / "m")
    users, items = feed_batch()
    got = loaded.predict("serving_default", {"user": users, "item": items})["score"]

    assert [op.op_type for op in loaded.graph.operations].count("fused_dense") == 3
    np.testing.assert_allclose(got, ncf_numpy(users, items, values, nodes["layers"]), rtol=1e-5)


def test_existing_target_is_refused_and_left_alone(tmp_path):
    nodes, session = trained_ncf(np.float32)
    target = tmp_path / "1"
    target.mkdir()
    (target / "keep.txt").write_text("earlier version")

    with pytest.raises(SavedGraphError, match="already exists"):
        save(target, session, serving_signature(nodes))

    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1"]


def test_failed_save_leaves_no_target_and_no_temporary(tmp_path, monkeypatch):
    nodes, session = trained_ncf(np.float32)
    target = tmp_path / "1"
    real_write = saved._write_file
    written = []

    def write_then_fail(path, data):
        assert not target.exists()  # nothing is visible at the target while writing
        if len(written) == 2:
            raise OSError(28, "No space left on device")
        real_write(path, data)
        written.append(path)

    monkeypatch.setattr(saved, "_write_file", write_then_fail)
    with pytest.raises(OSError, match="No space left"):
        save(target, session, serving_signature(nodes))

    assert len(written) == 2
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def saved_model(tmp_path) -> Path:
    nodes, session = trained_ncf(np.float32)
    return save(tmp_path / "1", session, serving_signature(nodes), assets={"a.txt": b"hello"})


def test_unknown_op_is_named(tmp_path, monkeypatch):
    x = tf.placeholder(tf.float64, [None], name="x")
    y = CubePlusOne([x], offset=0.0, name="my_cube")
    save(
        tmp_path / "m",
        tf.Session(tf.get_default_graph()),
        {"s": {"inputs": {"x": x}, "outputs": {"y": y}}},
    )
    monkeypatch.delitem(OP_TYPES, CubePlusOne.op_type)

    with pytest.raises(UnknownOpError, match="'my_cube' has op type 'test_saved_cube_plus_one'"):
        load(tmp_path / "m")


def test_bad_checksum_names_the_file(saved_model):
    npz = saved_model / "variables.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))

    with pytest.raises(ChecksumError, match=r"checksum mismatch for .*variables\.npz"):
        load(saved_model)


def test_tampered_asset_and_unlisted_file_are_caught(saved_model):
    (saved_model / "assets" / "a.txt").write_bytes(b"HELLO")
    with pytest.raises(ChecksumError, match=r"assets/a\.txt"):
        load(saved_model)
    (saved_model / "assets" / "a.txt").write_bytes(b"hello")
    (saved_model / "assets" / "extra.bin").write_bytes(b"x")
    with pytest.raises(ChecksumError, match=r"does not cover: \['assets/extra\.bin'\]"):
        load(saved_model)


def test_missing_variable_is_named(saved_model):
    with np.load(saved_model / "variables.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "dense1/W"}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (saved_model / "variables.npz").write_bytes(buffer.getvalue())
    rewrite_manifest(saved_model)

    with pytest.raises(
        MissingVariableError, match=r"variables\.npz has no value for variable 'dense1/W'"
    ):
        load(saved_model)


def test_newer_format_version_is_refused(saved_model):
    rewrite_manifest(saved_model, format_version=2)

    with pytest.raises(
        FormatVersionError, match="format version 2; this reader supports versions 1 to 1"
    ):
        load(saved_model)


def test_object_arrays_are_refused_without_unpickling(saved_model):
    buffer = io.BytesIO()
    np.savez(buffer, user_emb=np.array([{"not": "an array"}], dtype=object))
    (saved_model / "variables.npz").write_bytes(buffer.getvalue())
    rewrite_manifest(saved_model)

    with pytest.raises(SavedGraphError, match=r"variables\.npz: cannot read without pickle"):
        load(saved_model)


def test_not_a_saved_graph(tmp_path):
    with pytest.raises(SavedGraphError, match="not a directory"):
        load(tmp_path / "absent")
    with pytest.raises(SavedGraphError, match="manifest.json is missing"):
        load(tmp_path)


def test_predict_rejects_bad_requests(saved_model):
    model = load(saved_model)
    with pytest.raises(SignatureError, match=r"no signature 'predict'.*\['serving_default'\]"):
        model.predict("predict", {})
    with pytest.raises(SignatureError, match=r"missing \['item'\], unexpected \['items'\]"):
        model.predict("serving_default", {"user": [1], "items": [1]})
    with pytest.raises(SignatureError, match="input 'item' must be int32, got float64"):
        model.predict("serving_default", {"user": [1], "item": [1.5]})
    with pytest.raises(SignatureError, match=r"input 'user' must have shape \[-1\]"):
        model.predict("serving_default", {"user": [[1]], "item": [1]})
    with pytest.raises(SignatureError, match="outside the int32 range"):
        model.predict("serving_default", {"user": [2**40], "item": [1]})


def test_bad_save_arguments_are_named(tmp_path):
    nodes, session = trained_ncf(np.float32)
    with pytest.raises(SavedGraphError, match="input 'user' .* must be a placeholder"):
        save(tmp_path / "a", session, {"s": {"inputs": {"user": nodes["score"]}, "outputs": {}}})
    with pytest.raises(SavedGraphError, match="asset name '../x'"):
        save(tmp_path / "b", session, serving_signature(nodes), assets={"../x": b""})
    with pytest.raises(SavedGraphError, match="graph has no node named 'nope'"):
        save(tmp_path / "c", session, {"s": {"inputs": {}, "outputs": {"y": "nope"}}})
    assert list(tmp_path.iterdir()) == []


def test_malformed_graph_json_is_named(saved_model):
    graph_json = json.loads((saved_model / "graph.json").read_text())
    del graph_json["nodes"][0]["dtype"]  # the first node is the user_idx placeholder
    (saved_model / "graph.json").write_text(json.dumps(graph_json))
    rewrite_manifest(saved_model)

    with pytest.raises(SavedGraphError, match=r"graph\.json: node #0 .*KeyError: 'dtype'"):
        load(saved_model)
