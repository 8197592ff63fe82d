"""The model repository on a real S3-compatible server (moto's, as its own process; see
tests/s3_server.py): publishing, listing, the serving policies, the manifest as the completion
marker, fingerprints, the one reader's checksums, downloads, the URI spellings and endpoint
settings, and a clean interpreter exit after S3 was used."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pyarrow.fs as pafs
import pytest

from engine.saved import load
from peppercorn.config import ServedModelConfig
from peppercorn.fs import StorageError, filesystem, read_bytes, write_bytes
from peppercorn.loaded_version import VersionError
from peppercorn.model_repository import MANIFEST, ModelRepository, RepositoryError
from tests.serving.conftest import build_version

ITEMS = np.arange(1, 31)


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """Two versions of `neumf` and one of `gmf` saved locally, with their numpy oracles."""
    root = tmp_path_factory.mktemp("local-repo")
    built = {
        ("neumf", 1): build_version(root, "neumf", 1, seed=1),
        ("neumf", 2): build_version(root, "neumf", 2, seed=2),
        ("gmf", 1): build_version(root, "gmf", 1, seed=3, item_id_type="string"),
    }
    repo = ModelRepository(str(root))
    files = {key: repo.version(*key).files() for key in built}
    return built, files


def _publish_all(repo: ModelRepository, files: dict) -> None:
    for (name, version), contents in sorted(files.items(), key=lambda kv: kv[0][1]):
        assert repo.publish(name, contents).version == version


def _scores(repo: ModelRepository, name: str, version: int, user: int = 3) -> np.ndarray:
    return repo.version(name, version).open().score(user, ITEMS)


def test_publish_list_select_and_open(s3_uri, local):
    built, files = local
    repo = ModelRepository(f"{s3_uri}/models")
    assert repo.models() == [] and repo.versions("neumf") == [] and repo.latest("neumf") is None
    _publish_all(repo, files)
    assert repo.models() == ["gmf", "neumf"]
    assert repo.versions("neumf") == [1, 2] and repo.latest("neumf") == 2
    assert repo.versions("gmf") == [1] and repo.versions("absent") == []
    assert repo.select("neumf", ServedModelConfig()) == [2]
    assert repo.select("neumf", ServedModelConfig(policy="all")) == [2, 1]
    assert repo.select("neumf", ServedModelConfig(policy="specific", versions=[1, 5])) == [1]
    assert repo.version("neumf").version == 2
    assert repo.version("neumf", 1).uri == f"{s3_uri}/models/neumf/1"
    with pytest.raises(RepositoryError, match="has no version 3"):
        repo.version("neumf", 3)
    for (name, version), model in built.items():
        loaded = repo.version(name, version).open()
        assert (loaded.name, loaded.version, loaded.uri) == (
            name,
            version,
            f"{s3_uri}/models/{name}/{version}",
        )
        np.testing.assert_allclose(loaded.score(3, ITEMS), model.score(3, ITEMS), rtol=1e-6)
    # the two versions are different models: the test would notice a mix-up
    assert not np.allclose(_scores(repo, "neumf", 1), _scores(repo, "neumf", 2))
    # what was published is byte for byte what was read back, and nothing else is there: no
    # directory markers, no publisher's claim left behind
    assert repo.version("neumf", 2).files() == files[("neumf", 2)]
    objects = repo.fs.get_file_info(pafs.FileSelector(repo.path, recursive=True))
    expected = {f"{name}/{v}/{rel}" for (name, v), contents in files.items() for rel in contents}
    prefix = repo.path + "/"
    assert {i.path.removeprefix(prefix) for i in objects if i.is_file} == expected


def test_the_bucket_itself_as_the_root(s3_uri, local):
    built, files = local
    repo = ModelRepository(s3_uri)
    repo.publish("neumf", files[("neumf", 1)])
    assert repo.models() == ["neumf"] and repo.versions("neumf") == [1]
    np.testing.assert_allclose(
        _scores(repo, "neumf", 1), built[("neumf", 1)].score(3, ITEMS), rtol=1e-6
    )


def test_s3a_and_s3n_spellings_reach_the_same_bucket(s3_uri, local):
    built, files = local
    ModelRepository(f"{s3_uri}/models").publish("neumf", files[("neumf", 1)])
    bucket_path = s3_uri.removeprefix("s3://")
    for scheme in ("s3a", "s3n"):
        repo = ModelRepository(f"{scheme}://{bucket_path}/models/")
        assert repo.models() == ["neumf"] and repo.versions("neumf") == [1]
        assert repo.version("neumf").uri == f"{scheme}://{bucket_path}/models/neumf/1"
        np.testing.assert_allclose(
            _scores(repo, "neumf", 1), built[("neumf", 1)].score(3, ITEMS), rtol=1e-6
        )
    # a version published through s3a:// is there for s3://
    ModelRepository(f"s3a://{bucket_path}/models").publish("neumf", files[("neumf", 2)])
    assert ModelRepository(f"{s3_uri}/models").versions("neumf") == [1, 2]


NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def test_endpoint_from_the_uri_or_the_s3_specific_variable(s3_server, s3_uri, local, monkeypatch):
    _, files = local
    ModelRepository(f"{s3_uri}/models").publish("neumf", files[("neumf", 1)])
    host = s3_server.endpoint.removeprefix("http://")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    repo = ModelRepository(f"{s3_uri}/models?endpoint_override={host}&scheme=http")
    assert repo.versions("neumf") == [1]
    assert repo.version("neumf", 1).uri == (
        f"{s3_uri}/models/neumf/1?endpoint_override={host}&scheme=http"
    )
    assert repo.version("neumf", 1).open().version == 1
    # AWS_ENDPOINT_URL_S3 is the S3-specific setting: it wins over AWS_ENDPOINT_URL, and a
    # change of it alone reaches the next repository (no stale cached filesystem)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", NOWHERE)
    with pytest.raises(StorageError, match="cannot list"):
        ModelRepository(f"{s3_uri}/models").versions("neumf")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    assert ModelRepository(f"{s3_uri}/models").versions("neumf") == [1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", NOWHERE)
    assert ModelRepository(f"{s3_uri}/models").versions("neumf") == [1]


def test_a_version_without_its_manifest_is_not_there_yet(s3_uri, local):
    built, files = local
    repo = ModelRepository(f"{s3_uri}/models")
    repo.publish("neumf", files[("neumf", 1)])
    # a writer that has written every file of version 2 but not yet the manifest
    fs, root = filesystem(f"{s3_uri}/models")
    contents = files[("neumf", 2)]
    for rel, data in contents.items():
        if rel != MANIFEST:
            write_bytes(fs, f"{root}/neumf/2/{rel}", data)
    assert repo.versions("neumf") == [1] and repo.latest("neumf") == 1
    assert repo.select("neumf", ServedModelConfig(policy="all")) == [1]
    with pytest.raises(RepositoryError, match="has no version 2"):
        repo.version("neumf", 2)
    write_bytes(fs, f"{root}/neumf/2/{MANIFEST}", contents[MANIFEST])
    assert repo.versions("neumf") == [1, 2] and repo.latest("neumf") == 2
    np.testing.assert_allclose(
        _scores(repo, "neumf", 2), built[("neumf", 2)].score(3, ITEMS), rtol=1e-6
    )


def test_an_incomplete_version_keeps_its_number(s3_uri, local):
    _, files = local
    repo = ModelRepository(f"{s3_uri}/models")
    repo.publish("neumf", files[("neumf", 1)])
    fs, root = filesystem(f"{s3_uri}/models")
    write_bytes(fs, f"{root}/neumf/7/graph.json", b"{}")  # abandoned half-way
    assert repo.publish("neumf", files[("neumf", 2)]).version == 8
    assert repo.versions("neumf") == [1, 8]


def _flip_one_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_fingerprint_follows_the_files_and_a_flipped_byte_is_refused(s3_uri, local):
    _, files = local
    repo = ModelRepository(f"{s3_uri}/models")
    version = repo.publish("neumf", files[("neumf", 1)])
    before = version.fingerprint()
    assert before == version.fingerprint()  # stable while nothing changes
    fs, _ = filesystem(version.uri)
    target = next(rel for rel in sorted(files[("neumf", 1)]) if rel.endswith(".npz"))
    path = f"{repo.path}/neumf/1/{target}"
    original = read_bytes(fs, path)
    corrupt = _flip_one_byte(original, len(original) // 2)
    write_bytes(fs, path, corrupt)  # same size, same second: only the contents differ
    assert read_bytes(fs, path) == corrupt
    after = version.fingerprint()
    assert after != before
    with pytest.raises(VersionError, match=f"checksum mismatch for .*{target}") as info:
        version.open()
    assert info.value.code == "DATA_LOSS"
    write_bytes(fs, path, original)  # repaired: loads again, and the fingerprint says so
    assert version.fingerprint() != after
    assert version.open().version == 1


def test_a_missing_file_is_refused(s3_uri, local):
    _, files = local
    repo = ModelRepository(f"{s3_uri}/models")
    version = repo.publish("neumf", files[("neumf", 1)])
    fs, _ = filesystem(version.uri)
    fs.delete_file(f"{repo.path}/neumf/1/assets/seen.npz")
    with pytest.raises(VersionError, match="seen.npz is listed in the manifest but missing") as e:
        version.open()
    assert e.value.code == "DATA_LOSS"


def test_download_gives_a_folder_engine_saved_load_verifies(s3_uri, local, tmp_path):
    built, files = local
    repo = ModelRepository(f"{s3_uri}/models")
    _publish_all(repo, files)
    folder = repo.version("neumf", 2).download(tmp_path / "copy")
    assert folder == tmp_path / "copy" / "neumf" / "2"
    saved = load(folder)
    out = saved.predict(
        "serving_default",
        {"user_idx": np.full(ITEMS.size, 3, np.int32), "item_idx": ITEMS.astype(np.int32)},
    )
    np.testing.assert_allclose(
        np.asarray(out["score"]).reshape(-1), built[("neumf", 2)].score(3, ITEMS), rtol=1e-6
    )
    # and the local copy is a repository of its own
    local_copy = ModelRepository(str(tmp_path / "copy"))
    assert local_copy.versions("neumf") == [2]


def test_concurrent_publishers_get_distinct_whole_versions(s3_uri, local):
    built, files = local
    repo = ModelRepository(f"{s3_uri}/models")
    got, errors = [], []
    barrier = threading.Barrier(4)

    def publish(version: int):
        try:
            barrier.wait()
            published = repo.publish("neumf", files[("neumf", version)])
            got.append((published.version, version))
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(1 + i % 2,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(got) == 4
    # distinct numbers (one that all racers backed off from stays unused: numbers need not
    # be dense), each a complete version
    assert repo.versions("neumf") == sorted(v for v, _ in got)
    for published, source in got:  # each version is whole: one publisher's files, not a mix
        np.testing.assert_allclose(
            _scores(repo, "neumf", published),
            built[("neumf", source)].score(3, ITEMS),
            rtol=1e-6,
        )


def test_a_missing_bucket_is_an_error_not_an_empty_repository(s3_uri, local):
    _, files = local
    repo = ModelRepository("s3://peppercorn-no-such-bucket/models")
    message = "'peppercorn-no-such-bucket' does not exist"
    with pytest.raises(StorageError, match=message):
        repo.versions("neumf")
    with pytest.raises(StorageError, match=message):
        repo.models()
    with pytest.raises(StorageError, match=message):
        repo.publish("neumf", files[("neumf", 1)])
    # while an existing bucket without the root is an empty repository
    assert ModelRepository(f"{s3_uri}/not/yet").models() == []


def test_an_unreachable_endpoint_is_an_error_naming_the_repository(s3_uri, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", NOWHERE)
    repo = ModelRepository(f"{s3_uri}/models")
    start = time.monotonic()
    for listing in (repo.models, lambda: repo.versions("neumf")):
        with pytest.raises(StorageError, match=f"^{s3_uri}/models: cannot list"):
            listing()
    assert time.monotonic() - start < 60  # pyarrow's retries, not a hang


_CHILD = """
import sys, threading, time
import numpy as np
from peppercorn.model_repository import ModelRepository
source, target = sys.argv[1], sys.argv[2]
files = ModelRepository(source).version("neumf", 1).files()
repo = ModelRepository(target)
version = repo.publish("neumf", files)
loaded = version.open()
print(repo.versions("neumf"), float(loaded.score(3, np.arange(1, 31)).sum()), flush=True)
KEEP = (repo, version)  # S3 objects still referenced when the interpreter exits
if sys.argv[3] == "reader":  # and a thread still listing when it does
    def poll():
        while True:
            repo.versions("neumf")
    threading.Thread(target=poll, daemon=True).start()
if sys.argv[3] == "writer":  # or one in the middle of publishing a large version
    large = {**files, "assets/large.bin": bytes(24 << 20)}
    threading.Thread(target=repo.publish, args=("neumf", large), daemon=True).start()
    time.sleep(0.2)
"""


@pytest.mark.parametrize("mode", ["plain", "reader", "writer"])
def test_a_process_that_used_s3_exits_cleanly(s3_server, s3_uri, local, tmp_path, mode):
    built, _ = local
    source = tmp_path / "src"
    build_version(source, "neumf", 1, seed=1)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD), str(source), f"{s3_uri}/m", mode],
        env=s3_server.child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "FinalizeS3" not in result.stderr and "Segmentation" not in result.stderr
    versions, total = result.stdout.split("]")
    assert json.loads(versions + "]") == [1]
    np.testing.assert_allclose(float(total), built[("neumf", 1)].score(3, ITEMS).sum(), 1e-5)
    assert time.monotonic() - started < 60
