"""`python -m pipeline train`: end to end on a synthetic dataset, one-line errors with exit 2."""

import json

import pytest
import yaml

from engine.saved import load
from pipeline.cli import main
from training.data.synthetic import write_synthetic_dataset


def _config(tmp_path, **model):
    cfg = {
        "dataset": {"kind": "synthetic", "name": "syn"},
        "paths": {"data_root": str(tmp_path / "data"), "model_repository": str(tmp_path / "m")},
        "model": model or {"name": "gmf", "params": {"factors": 4}},
        "training": {"epochs": 2, "batch_size": 64, "learning_rate": 0.01},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_exports_a_version_with_report(tmp_path, capsys):
    write_synthetic_dataset(tmp_path / "data/syn", users=20, items=30, per_user=6)
    cfg = _config(tmp_path)
    assert main(["train", "--config", str(cfg)]) == 0
    assert main(["train", "--config", str(cfg), "--model", "ranker", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "exported" in out and str(tmp_path / "m/gmf/1") in out
    saved = load(tmp_path / "m/gmf/1")
    report = saved.assets["report.md"].decode()
    assert "popular" in report and "![loss](loss.png)" in report
    assert saved.assets["loss.png"][:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads(saved.assets["metrics.json"])
    assert metrics["epochs"] == 2
    ranker = json.loads(load(tmp_path / "m/ranker/1").assets["feature_spec.json"])
    declared = {i["name"] for i in ranker["params"]["inputs"]}
    assert {"user_idx", "item_idx", "segment", "genre", "genre_mix"} <= declared
    # a second run of the same model gets the next version
    assert main(["train", "--config", str(cfg), "--epochs", "1"]) == 0
    assert (tmp_path / "m/gmf/2/manifest.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nope"], "unknown model 'nope'"),
        ([], "run `make etl` first"),
        (["--epochs", "0"], "--epochs must be at least 1"),
    ],
)
def test_errors_are_one_line_exit_2(tmp_path, capsys, args, message):
    cfg = _config(tmp_path)
    assert main(["train", "--config", str(cfg), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_bad_config_and_params(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: {epochs: -1}\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert "training.epochs" in capsys.readouterr().err
    root = tmp_path / "data/syn"
    write_synthetic_dataset(root, users=10, items=30, per_user=5, eval_negatives=10)
    cfg = _config(tmp_path, name="gmf", params={"factorz": 3})
    assert main(["train", "--config", str(cfg)]) == 2
    assert "unknown key(s) ['factorz']" in capsys.readouterr().err


def test_a_diverging_run_fails_before_export_naming_the_variable(tmp_path, capsys):
    write_synthetic_dataset(tmp_path / "data/syn", users=20, items=30, per_user=6)
    cfg = _config(tmp_path)
    body = yaml.safe_load(cfg.read_text())
    # Plain SGD at 1e30: the first steps overflow the logits, the next ones the weights.
    body["training"].update(optimizer="sgd", learning_rate=1e30)
    cfg.write_text(yaml.safe_dump(body))
    assert main(["train", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().split("\r")[-1]  # after the progress bar
    assert err.startswith("error: training diverged in epoch 1 (mean loss ")
    assert "variable 'gmf/" in err and "non-finite values" in err and "\n" not in err
    assert "lower training.learning_rate" in err
    assert not (tmp_path / "m").exists()  # nothing exported, not even an empty model folder
