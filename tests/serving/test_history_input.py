"""A model that reads each user's history (fism), trained, exported and served.

Oracle: FISM's formula in numpy over the version's variables, with each user's history read
from the features stage's `history/` table by pandas (newest first, as written there).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from peppercorn.loaded_version import SERVING_SIGNATURE
from tests.serving.conftest import make_settings, wait_until

LENGTH = 5  # features.history_length of the dataset: users have 8 training items


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from peppercorn.config import TrainingConfig
    from peppercorn.model_repository import ModelRepository
    from training.data import open_dataset
    from training.data.synthetic import write_synthetic_dataset
    from training.export import export_model
    from training.trainer import Trainer

    root = tmp_path_factory.mktemp("history")
    write_synthetic_dataset(root, users=12, items=30, per_user=10, eval_negatives=8,
                            history_length=LENGTH)  # fmt: skip
    dataset = open_dataset(str(root))
    cfg = TrainingConfig(epochs=1, batch_size=64, learning_rate=0.05, seed=3)
    trainer = Trainer(dataset, cfg, "fism", {"factors": 3}, root / "ck", progress=False)
    export_model(trainer.fit(), dataset, trainer.seen, root / "repo", "fism", None)
    table = pd.read_parquet(root / "features" / "history")
    histories = {int(r.user_idx): [int(i) for i in r.item_idx] for r in table.itertuples()}
    return root / "repo", ModelRepository(str(root / "repo")).version("fism").open(), histories


def _oracle(version, user: int, items, history: list[int]) -> np.ndarray:
    v = version.variables()
    y, p, q = v["fism/history_item"], v["fism/user"], v["fism/item"]
    out = []
    for i in np.asarray(items).tolist():
        others = [j for j in history if j != i]
        norm = len(history) ** -1.0 if history else 0.0  # alpha 1, the default
        user_vec = p[user] + norm * y[others].sum(axis=0)
        logit = (user_vec * q[i]) @ v["fism/out/w"][:, 0] + v["fism/out/b"][0]
        out.append(logit + v["fism/item_bias"][i, 0])
    return 1.0 / (1.0 + np.exp(-np.asarray(out, np.float64)))


def test_the_version_exports_each_users_history_and_scores_with_it(trained):
    _, version, histories = trained
    assert version.history_length == LENGTH
    assert "fism/user_history" not in version.variables()  # no per-user table in the graph
    items = np.arange(1, 31)
    for user in (1, 5, 12):
        assert version.history_rows([user])[0].tolist() == histories[user]
        want = _oracle(version, user, items, histories[user])
        np.testing.assert_allclose(version.score(user, items), want, rtol=1e-5)


def test_a_history_above_the_cap_keeps_its_newest_items(trained):
    _, version, histories = trained
    long = [7, 3, 9, 11, 2, 4, 6, 8]  # newest first: 7, 3, 9, 11, 2 are kept
    items = np.array([3, 5, 20], np.int32)
    out = version.predict(SERVING_SIGNATURE, {
        "user_idx": np.full(3, 2, np.int32), "item_idx": items, "history": np.array([long]),
    })["score"]  # fmt: skip
    np.testing.assert_allclose(out, _oracle(version, 2, items, long[:LENGTH]), rtol=1e-5)


def test_an_empty_history_scores_from_the_user_and_bias_alone(trained):
    _, version, _ = trained
    items = np.array([1, 2, 3], np.int32)
    out = version.predict(SERVING_SIGNATURE, {
        "user_idx": np.full(3, 4, np.int32), "item_idx": items,
        "history": np.zeros((1, 0), np.int32),
    })["score"]  # fmt: skip
    np.testing.assert_allclose(out, _oracle(version, 4, items, []), rtol=1e-5)
    # An unknown user (index 0) has an empty exported history.
    assert not version.history_rows([0]).any()
    np.testing.assert_allclose(version.score(0, items), _oracle(version, 0, items, []), rtol=1e-5)


@pytest.mark.parametrize(
    "history, fragment",
    [
        ([[1, 31]], r"history out of range \[0, 31\) \(0: padding\): \[31\]"),
        ([[1, -2]], r"history out of range"),
        ([[1.5, 2.0]], "history must be integer item indices"),
        ([1, 2], "history must be integer item indices"),
        ([[1], [2]], "history has 2 rows: one per item_idx \\(3\\), or 1 for all"),
    ],
)
def test_a_bad_history_is_a_clear_error(trained, history, fragment):
    _, version, _ = trained
    inputs = {"user_idx": np.ones(3, np.int32), "item_idx": np.array([1, 2, 3], np.int32)}
    with pytest.raises(ValueError, match=fragment):
        version.predict(SERVING_SIGNATURE, {**inputs, "history": np.array(history)})


@pytest.fixture(scope="module")
def client(trained):
    from fastapi.testclient import TestClient

    from serving.main import create_app

    repo, _, _ = trained
    with TestClient(create_app(make_settings(repo))) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        yield client


def test_web_clients_send_ids_and_the_exported_history_is_fed(client, trained):
    _, version, histories = trained
    user = 7
    r = client.post("/predict", json={"user_id": user, "item_ids": [3, 4, 30]})
    assert r.status_code == 200, r.text
    want = _oracle(version, user, [3, 4, 30], histories[user])
    np.testing.assert_allclose(r.json()["scores"], want, rtol=1e-5)
    r = client.post("/recommend", json={"user_id": user, "k": 5, "exclude_seen": False})
    assert r.status_code == 200, r.text
    scores = _oracle(version, user, np.arange(1, 31), histories[user])
    top = np.argsort(-scores, kind="stable")[:5] + 1
    assert [item["item_id"] for item in r.json()["items"]] == top.tolist()


def test_tf_serving_clients_send_the_history_themselves(client, trained):
    _, version, _ = trained
    # A tensor, as TF Serving takes: rows 0-padded to one width (here 7, cut to L = 5).
    rows = [
        {"user_idx": 3, "item_idx": 5, "history": [9, 8, 7, 6, 5, 4, 3]},
        {"user_idx": 3, "item_idx": 6, "history": [0, 0, 0, 0, 0, 0, 0]},  # empty
    ]
    r = client.post("/v1/models/fism:predict", json={"instances": rows})
    assert r.status_code == 200, r.text
    want = [_oracle(version, 3, [5], [9, 8, 7, 6, 5])[0], _oracle(version, 3, [6], [])[0]]
    np.testing.assert_allclose(r.json()["predictions"], want, rtol=1e-5)
    meta = client.get("/v1/models/fism/metadata").json()
    inputs = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert [d["size"] for d in inputs["history"]["tensor_shape"]["dim"]] == ["-1", str(LENGTH)]
    bad = {"instances": [{"user_idx": 3, "item_idx": 5, "history": [99]}]}
    r = client.post("/v1/models/fism:predict", json=bad)
    assert r.status_code == 400 and "history out of range" in r.text


def test_batch_top_k_scores_each_user_with_their_own_history(trained):
    _, version, histories = trained
    users, pool = np.array([2, 9, 0], np.int32), np.arange(1, 31, dtype=np.int32)
    rows, ranks, items, scores = version.top_k(users, pool, 3)
    for row, user in enumerate(users.tolist()):
        want = _oracle(version, user, pool, histories.get(user, []))
        seen = set(version.seen(user).tolist())
        order = [int(pool[c]) for c in np.argsort(-want, kind="stable") if pool[c] not in seen]
        assert items[rows == row].tolist() == order[:3], user
        np.testing.assert_allclose(scores[rows == row], want[np.array(order[:3]) - 1], rtol=1e-5)
