"""Config files: shipped ones validate; invalid ones name the file, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from peppercorn.config import ConfigError, join_uri, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["default.yaml", "ml100k.yaml", "ml100k-ncf.yaml"])
def test_shipped_configs_validate(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.source.endswith(name)
    assert cfg.spark.master == "local[*]"
    assert cfg.paths.data_root == "data"
    assert cfg.paths.model_repository == "models"


def test_default_config_is_the_synthetic_dataset():
    cfg = load_config(CONFIGS / "default.yaml")
    assert cfg.dataset.kind == "synthetic"
    assert cfg.dataset_root() == "data/synthetic"


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


def test_wrong_type_names_file_key_and_expectation(tmp_path):
    path = _write(tmp_path, "training:\n  batch_size: lots\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "training.batch_size" in msg
    assert "integer" in msg and "'lots'" in msg


def test_unknown_key_is_an_error_not_ignored(tmp_path):
    path = _write(tmp_path, "spark:\n  mastr: local[2]\n")
    with pytest.raises(ConfigError, match=r"spark\.mastr: unknown key"):
        load_config(path)


def test_out_of_range_and_bad_choice(tmp_path):
    path = _write(
        tmp_path,
        "dataset:\n  synthetic:\n    malformed_fraction: 1.5\ntraining:\n  optimizer: adadelta\n",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "dataset.synthetic.malformed_fraction" in msg and "less than 1" in msg
    assert "training.optimizer" in msg and "'adam'" in msg


def test_non_synthetic_dataset_needs_a_path(tmp_path):
    path = _write(tmp_path, "dataset:\n  kind: movielens-100k\n")
    with pytest.raises(ConfigError, match="dataset.path is required"):
        load_config(path)


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "a: [1, 2\n"))
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(_write(tmp_path, "- 1\n- 2\n"))


def test_overrides_apply_dotted_keys(tmp_path):
    cfg = load_config(CONFIGS / "default.yaml", {"spark.master": "local[2]", "training.epochs": 3})
    assert cfg.spark.master == "local[2]"
    assert cfg.training.epochs == 3


def test_join_uri_keeps_schemes():
    assert (
        join_uri("hdfs://nn:8020/data/", "ml100k", "/clean") == "hdfs://nn:8020/data/ml100k/clean"
    )
    assert join_uri("s3a://bucket", "x") == "s3a://bucket/x"
    assert join_uri("data", "x") == "data/x"
