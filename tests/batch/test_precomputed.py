"""serving.precomputed: /recommend answers from the latest batch partition only when exact."""

from __future__ import annotations

import pandas as pd
import pytest

from serving.precomputed import PrecomputedTopK, latest_day


def _write_day(root, day, rows, model="neumf", version=1):
    folder = root / f"dt={day}"
    folder.mkdir(parents=True)
    df = pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "score"])
    df["rank"] = df["rank"].astype("int32")
    df["score"] = df["score"].astype("float32")
    df["model"], df["version"] = model, version
    df.to_parquet(folder / "part-00000.parquet", index=False)


@pytest.fixture
def app_with_batch(tmp_path):
    """A served dot-product model and a hand-written batch output that differs from it."""
    from fastapi.testclient import TestClient

    from serving.main import create_app
    from tests.serving.conftest import build_version, make_settings, wait_until

    build_version(tmp_path / "models", "neumf", 1, seed=1)
    out = tmp_path / "recommendations"
    # Deliberately not what the model scores, so a hit is visibly the table's answer.
    _write_day(out, "2026-10-30", [("u001", 1, "10", 0.1)])
    _write_day(out, "2026-10-31", [("u001", 2, "30", 0.25), ("u001", 1, "20", 0.5),
                                   ("u002", 1, "40", 0.75)])  # fmt: skip
    (out / "dt=garbage").mkdir()
    settings = make_settings(tmp_path / "models", batch_output=str(out))
    with TestClient(create_app(settings)) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        yield client, tmp_path


def test_latest_day_ignores_non_dates_and_empty_days(tmp_path):
    _write_day(tmp_path, "2026-10-30", [("u1", 1, "1", 0.5)])
    (tmp_path / "dt=2026-12-01").mkdir()  # no data files: an interrupted write
    (tmp_path / "dt=soon").mkdir()
    assert latest_day(tmp_path) == "2026-10-30"
    assert latest_day(tmp_path / "absent") is None


def test_answers_from_the_latest_day_when_exact(app_with_batch):
    client, _ = app_with_batch
    r = client.post("/recommend", json={"user_id": "u001", "k": 2})
    assert r.status_code == 200 and r.headers["x-peppercorn-source"] == "batch"
    assert r.json() == {
        "model": "neumf", "version": 1, "fallback": False,
        "items": [{"item_id": 20, "score": 0.5}, {"item_id": 30, "score": 0.25}],
    }  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        {"user_id": "u001", "k": 3},  # more than the rows kept for the user
        {"user_id": "u001", "k": 2, "candidates": [20, 30]},
        {"user_id": "u001", "k": 2, "exclude_seen": False},
        {"user_id": "u003", "k": 1},  # not in the table
    ],
)
def test_falls_back_to_online_scoring(app_with_batch, body):
    client, _ = app_with_batch
    r = client.post("/recommend", json=body)
    assert r.status_code == 200, r.text
    assert "x-peppercorn-source" not in r.headers
    assert r.json()["fallback"] is False and len(r.json()["items"]) == body["k"]


def test_another_version_is_not_answered_from_the_table(tmp_path):
    out = tmp_path / "out"
    _write_day(out, "2026-10-31", [("u001", 1, "20", 0.5)], version=1)
    store = PrecomputedTopK(out, refresh_s=0)
    assert store.lookup("neumf", 1, "u001", 1, True, None) == (["20"], [0.5])
    assert store.lookup("neumf", 2, "u001", 1, True, None) is None
    assert store.lookup("other", 1, "u001", 1, True, None) is None
    _write_day(out, "2026-11-01", [("u001", 1, "30", 0.25)], version=2)
    assert store.lookup("neumf", 2, "u001", 1, True, None) == (["30"], [0.25])


def test_a_mixed_partition_is_ignored(tmp_path, caplog):
    out = tmp_path / "out"
    _write_day(out, "2026-10-31", [("u001", 1, "20", 0.5)], version=1)
    extra = pd.read_parquet(out / "dt=2026-10-31").assign(version=2)
    extra.to_parquet(out / "dt=2026-10-31" / "part-00001.parquet", index=False)
    store = PrecomputedTopK(out, refresh_s=0)
    assert store.lookup("neumf", 1, "u001", 1, True, None) is None
    assert "expected one model version" in caplog.text
