"""TF Serving's REST API: status, metadata and predict, success and error paths."""

from __future__ import annotations

import numpy as np
import pytest


def test_model_status_is_tf_servings_json(served):
    client, _ = served
    r = client.get("/v1/models/neumf")
    assert r.status_code == 200
    assert r.json() == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert client.get("/v1/models/neumf/versions/1").json() == r.json()


@pytest.mark.parametrize(
    ("path", "code", "fragment"),
    [
        ("/v1/models/nope", 404, "Servable not found for request: Latest(nope)"),
        ("/v1/models/neumf/versions/7", 404, "Specific(neumf, 7)"),
        ("/v1/models/neumf/versions/x", 400, "version must be a non-negative integer"),
        ("/v1/models/neumf/versions/²", 400, "version must be a non-negative integer"),
        ("/v1/models/neumf/versions/١", 400, "version must be a non-negative integer"),
        ("/v1/models/neumf/labels/stable", 404, "Unrecognized servable version label: stable"),
        ("/v1/models/nope/metadata", 404, "Latest(nope)"),
        ("/v1/models/neumf/versions/2/metadata", 404, "Specific(neumf, 2)"),
    ],
)
def test_status_and_metadata_errors(served, path, code, fragment):
    client, _ = served
    r = client.get(path)
    assert r.status_code == code
    assert fragment in r.json()["error"]


def test_metadata_describes_the_serving_signature(served):
    client, _ = served
    body = client.get("/v1/models/neumf/metadata").json()
    assert body["model_spec"] == {"name": "neumf", "signature_name": "", "version": "1"}
    sig = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    assert sig["inputs"]["user_idx"]["dtype"] == "DT_INT32"
    assert sig["inputs"]["item_idx"]["tensor_shape"] == {"dim": [{"size": "-1"}]}
    assert sig["outputs"]["score"]["dtype"] == "DT_FLOAT"
    assert client.get("/v1/models/neumf/versions/1/metadata").json() == body


def test_predict_row_and_columnar_formats_match_the_numpy_oracle(served):
    client, built = served
    users, items = [1, 2, 3, 0], [5, 9, 30, 0]
    want = [built.score(u, [i])[0] for u, i in zip(users, items, strict=True)]
    rows = [{"user_idx": u, "item_idx": i} for u, i in zip(users, items, strict=True)]
    r = client.post("/v1/models/neumf:predict", json={"instances": rows})
    assert r.status_code == 200
    np.testing.assert_allclose(r.json()["predictions"], want, rtol=1e-5)
    r = client.post(
        "/v1/models/neumf/versions/1:predict",
        json={
            "signature_name": "serving_default",
            "inputs": {"user_idx": users, "item_idx": items},
        },
    )
    assert r.status_code == 200
    np.testing.assert_allclose(r.json()["outputs"], want, rtol=1e-5)


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({}, 400, "exactly one of 'instances' or 'inputs'"),
        ({"instances": [], "inputs": {}}, 400, "exactly one of"),
        ({"signature_name": "x", "instances": []}, 400, 'Serving signature name: "x" not found'),
        ({"instances": [{"user_idx": 1}]}, 400, "exactly the inputs"),
        ({"instances": [3]}, 400, "exactly the inputs"),
        ({"inputs": {"user_idx": [1]}}, 400, "exactly the inputs"),
        ({"inputs": [1, 2]}, 400, "expected an object"),
        ({"inputs": {"user_idx": [1.5], "item_idx": [1]}}, 400, "expected integers"),
        ({"inputs": {"user_idx": [True], "item_idx": [1]}}, 400, "expected integers"),
        ({"inputs": {"user_idx": ["1"], "item_idx": [1]}}, 400, "expected integers"),
        ({"inputs": {"user_idx": [[1]], "item_idx": [1]}}, 400, "expected rank 1"),
        ({"inputs": {"user_idx": [1, 2], "item_idx": [1]}}, 400, "different batch sizes"),
        ({"inputs": {"user_idx": [1], "item_idx": [31]}}, 400, "item_idx out of range [0, 31)"),
        ({"inputs": {"user_idx": [-1], "item_idx": [1]}}, 400, "user_idx out of range"),
        ({"inputs": {"user_idx": [2**40], "item_idx": [1]}}, 400, "outside the int32 range"),
        ({"instances": [{"user_idx": 1, "item_idx": 1}] * 51}, 413, "instances too large: 51"),
        ({"inputs": {"user_idx": [1] * 51, "item_idx": [1] * 51}}, 413, "batch too large: 51"),
        ({"instances": [], "extra": 1}, 400, "extra"),
    ],
)
def test_predict_bad_arguments(served, body, code, fragment):
    client, _ = served
    r = client.post("/v1/models/neumf:predict", json=body)
    assert r.status_code == code, r.text
    assert fragment in r.json()["error"]


def test_predict_unknown_model_version_label_and_malformed_json(served):
    client, _ = served
    ok = {"instances": [{"user_idx": 1, "item_idx": 1}]}
    assert client.post("/v1/models/nope:predict", json=ok).status_code == 404
    assert client.post("/v1/models/neumf/versions/3:predict", json=ok).status_code == 404
    assert client.post("/v1/models/neumf/labels/canary:predict", json=ok).status_code == 404
    r = client.post(
        "/v1/models/neumf:predict",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    r = client.post("/v1/models/neumf:predict", json=[1, 2])
    assert r.status_code == 400


def test_body_over_the_byte_limit_is_413(served):
    client, _ = served
    r = client.post(
        "/v1/models/neumf:predict",
        content=b"x" * 20_001,
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    assert "request body too large" in r.json()["error"]


def test_empty_batch_returns_empty_predictions(served):
    client, _ = served
    r = client.post("/v1/models/neumf:predict", json={"inputs": {"user_idx": [], "item_idx": []}})
    assert r.status_code == 200, r.text
    assert r.json() == {"outputs": []}


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", None, "application/json"]
)
def test_bodies_are_json_whatever_the_content_type(served, content_type):
    # TF Serving's own examples use `curl -d '{...}'`, which sends a form Content-Type.
    client, built = served
    headers = {"content-type": content_type} if content_type else {}
    body = b'{"instances": [{"user_idx": 1, "item_idx": 5}]}'
    r = client.post("/v1/models/neumf:predict", content=body, headers=headers)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], built.score(1, [5]), rtol=1e-5)
