"""The model repository on local disk: layout rules, version policies, publishing, and the one
reader's checks; ranking against hand-worked examples."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from peppercorn.config import ServedModelConfig
from peppercorn.loaded_version import VersionError, rank_top_k
from peppercorn.model_repository import STALE_AFTER_SECONDS, ModelRepository, RepositoryError
from peppercorn.version_assets import VersionContents
from tests.serving.conftest import build_version


def test_layout_rules(tmp_path):
    repo = ModelRepository(str(tmp_path))
    assert repo.models() == [] and repo.latest("neumf") is None
    build_version(tmp_path, "neumf", 3)
    build_version(tmp_path, "neumf", 10)
    build_version(tmp_path, "gmf", 1)
    for junk in ("neumf/tmp", "neumf/.11.staging-x", "neumf/12", ".hidden", "_x"):
        (tmp_path / junk).mkdir(parents=True)
    (tmp_path / "neumf" / "13").write_text("a file, not a version")
    assert repo.models() == ["gmf", "neumf"]
    # 12 has no manifest: still being written (or abandoned), so not a version
    assert repo.versions("neumf") == [3, 10] and repo.latest("neumf") == 10
    assert repo.version("neumf").version == 10
    with pytest.raises(RepositoryError, match="has no version 12"):
        repo.version("neumf", 12)
    with pytest.raises(RepositoryError, match="no exported version of model 'absent'"):
        repo.version("absent")


def test_version_policies(tmp_path):
    for v in (1, 2, 3):
        build_version(tmp_path, "m", v)
    repo = ModelRepository(f"file://{tmp_path}")
    assert repo.select("m", ServedModelConfig()) == [3]
    assert repo.select("m", ServedModelConfig(latest=2)) == [3, 2]
    assert repo.select("m", ServedModelConfig(policy="all")) == [3, 2, 1]
    assert repo.select("m", ServedModelConfig(policy="specific", versions=[1, 7])) == [1]


def test_publish_claims_the_next_number_above_every_folder(tmp_path):
    built = build_version(tmp_path, "m", 1)
    (tmp_path / "m" / "7").mkdir()  # an abandoned, incomplete version keeps its number
    repo = ModelRepository(str(tmp_path))
    files = repo.version("m", 1).files()
    assert repo.publish("m", files).version == 8
    assert repo.versions("m") == [1, 8]
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "7", "8"]
    loaded = repo.version("m", 8).open()
    np.testing.assert_allclose(loaded.score(2, np.array([1, 5])), built.score(2, [1, 5]), 1e-6)


def test_concurrent_publishers_get_distinct_versions(tmp_path):
    build_version(tmp_path, "m", 1)
    repo = ModelRepository(str(tmp_path))
    files = repo.version("m", 1).files()
    got, errors = [], []

    def publish():
        try:
            got.append(repo.publish("m", files).version)
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(got) == [2, 3, 4, 5]
    assert repo.versions("m") == [1, 2, 3, 4, 5]


def test_open_decodes_the_assets_the_builder_wrote(tmp_path):
    built = build_version(tmp_path, "m", 1, item_id_type="int")
    loaded = ModelRepository(str(tmp_path)).version("m").open()
    assert (loaded.name, loaded.version) == ("m", 1)
    assert loaded.users.tokens[1:] == built.user_ids and loaded.items.raw(1) == 10
    assert loaded.items.lookup(10) == 1 and loaded.items.lookup("nope") == 0
    for user, items in built.seen.items():
        assert loaded.seen(user).tolist() == items
    assert loaded.popular_idx.tolist() == built.popular
    assert loaded.metrics == {"hr@10": 0.5, "ndcg@10": 0.3}
    with pytest.raises(ValueError, match=r"item_idx out of range \[0, 31\): \[31\]"):
        loaded.predict("serving_default", {"user_idx": np.array([1]), "item_idx": np.array([31])})


@pytest.mark.parametrize(
    ("asset", "code", "message"),
    [
        ("popular_items.json", "NOT_FOUND", "missing asset popular_items.json"),
        ("seen.npz", "NOT_FOUND", "missing asset seen.npz"),
        ("vocab/item_id.json", "NOT_FOUND", "missing asset vocab/item_id.json"),
    ],
)
def test_a_version_without_a_required_asset_is_refused(tmp_path, asset, code, message):
    build_version(tmp_path, "m", 1, drop_assets=(asset,))
    with pytest.raises(VersionError, match=message) as info:
        ModelRepository(str(tmp_path)).version("m").open()
    assert info.value.code == code


def test_rank_top_k_by_hand():
    scores = np.array([[0.2, 0.9, 0.9, 0.1, 0.5], [0.3, 0.3, 0.3, 0.3, 0.3]])
    excluded = np.array([[False, True, False, False, False], [True, True, True, False, True]])
    order, valid = rank_top_k(scores, excluded, 3)
    # row 0: 1 is excluded, so 2 (0.9), 4 (0.5), 0 (0.2); row 1: only column 3 is eligible
    assert order[0].tolist() == [2, 4, 0] and valid[0].all()
    assert order[1, 0] == 3 and valid[1].tolist() == [True, False, False]
    ties, _ = rank_top_k(np.array([[0.5, 0.7, 0.5, 0.7]]), np.zeros((1, 4), bool), 4)
    assert ties[0].tolist() == [1, 3, 0, 2]  # equal scores: lower column first


def test_a_version_with_non_finite_weights_is_not_loaded(tmp_path):
    build_version(tmp_path, "m", 1, nan_users=(4,))
    with pytest.raises(VersionError) as info:
        ModelRepository(str(tmp_path)).version("m").open()
    assert info.value.code == "INVALID_ARGUMENT"
    assert info.value.message == (
        "non-finite weights: variable 'user_embedding' has 4 non-finite values (4 NaN, 0 inf) "
        "of 84, first at index [4, 0]"
    )


def test_export_refuses_non_finite_weights_and_writes_nothing(tmp_path):
    build_version(tmp_path / "good", "m", 1)
    saved = ModelRepository(str(tmp_path / "good")).version("m").open().saved
    var = next(v for v in saved.graph.variables if v.name == "item_embedding")
    value = saved.session.get_value(var)
    value[2, 1] = np.inf
    saved.session.set_value(var, value)
    signatures = {
        "serving_default": {
            "inputs": {"user_idx": saved.node("user_idx"), "item_idx": saved.node("item_idx")},
            "outputs": {"score": saved.node("score")},
        }
    }
    contents = VersionContents({}, np.zeros(0), np.zeros(0), np.zeros(1), np.zeros(0))
    repo = ModelRepository(str(tmp_path / "repo"))
    with pytest.raises(
        RepositoryError,
        match=r"refusing to export 'm': non-finite weights: "
        r"variable 'item_embedding' has 1 non-finite values \(0 NaN, 1 inf\)",
    ):
        repo.export("m", saved.session, signatures, contents)  # fmt: skip
    assert not (tmp_path / "repo").exists()


def test_a_publish_removes_what_killed_exports_left_once_stale(tmp_path):
    build_version(tmp_path, "m", 1)
    repo = ModelRepository(str(tmp_path))
    old = tmp_path / "m" / ".2.staging-0123abcd"
    young = tmp_path / "m" / ".3.staging-4567ef01"
    for folder in (old, young):
        folder.mkdir()
        (folder / "graph.json").write_text("{}")
    hours_ago = time.time() - STALE_AFTER_SECONDS - 60
    os.utime(old, (hours_ago, hours_ago))
    assert repo.publish("m", repo.version("m", 1).files()).version == 2
    # The young one may belong to an export still running: left alone.
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [young.name, "1", "2"]
    assert repo.remove_leftovers("m", stale_after=0) == [f"{repo.path}/m/{young.name}"]
