"""Issue #20's first done-when: two trainings on small data, both runs found in the tracking
store (parameters, per-epoch and final metrics, artifacts, exported version, registry), and
`bench.report`'s tables listing them. Expectations come from the exported versions' own files
(metrics.json, report.md, manifest.json) and the configs, never from the store's reader."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from bench.report import main as report_main
from bench.report import quality_tables, run_record, runs_markdown, update_readme
from peppercorn.config import load_config
from peppercorn.tracking import TrackingTarget
from peppercorn.tracking.runs import TrackedRun, read_runs
from training.data.synthetic import write_synthetic_dataset

SEEDS = (1, 2)
EPOCHS = 3
README = """# Project

Prose before.

<!-- quality-table:tiny:begin -->
a stale table
<!-- quality-table:tiny:end -->

Prose between.

<!-- quality-table:tiny/full:begin -->
<!-- quality-table:tiny/full:end -->
"""


def _config(root: Path, seed: int) -> Path:
    body = {
        "dataset": {"kind": "synthetic", "name": "tiny"},
        "paths": {"data_root": str(root / "data"), "model_repository": str(root / "models")},
        "model": {"name": "gmf", "params": {"factors": 8}},
        "training": {"epochs": EPOCHS, "early_stopping_patience": EPOCHS, "learning_rate": 0.02,
                     "batch_size": 64, "seed": seed, "full_eval_users": 40},
    }  # fmt: skip
    path = root / f"seed{seed}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store, made once: its schema migrations take 5-20 s here, a
    copy of the file milliseconds."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def _features(root: Path, empty_store: Path) -> None:
    """The tiny features dataset and an empty tracking store under `root`'s data root."""
    write_synthetic_dataset(root / "data" / "tiny", users=40, items=50, per_user=10,
                            eval_negatives=20)  # fmt: skip
    shutil.copyfile(empty_store, root / "data" / "mlflow.db")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, empty_store):
    """Two `python -m pipeline train` runs (seeds 1 and 2) tracked into a SQLite store."""
    from pipeline.cli import main as pipeline_main

    root = tmp_path_factory.mktemp("report")
    _features(root, empty_store)
    configs = [_config(root, seed) for seed in SEEDS]
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("PEPPERCORN_TRACKING", raising=False)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        for config in configs:
            assert pipeline_main(["train", "--config", str(config)]) == 0
    target = TrackingTarget.from_config(load_config(configs[0]))
    runs = read_runs(target, ["tiny"], artifacts=True)
    by_seed = {int(r.params["training.seed"]): r for r in runs}
    return {"root": root, "target": target, "runs": runs, "by_seed": by_seed}


def _version_dir(trained, seed: int) -> Path:
    return trained["root"] / "models" / "gmf" / str(SEEDS.index(seed) + 1)


def _exported_metrics(trained, seed: int) -> dict:
    return json.loads((_version_dir(trained, seed) / "assets" / "metrics.json").read_text())


def _report_epochs(trained, seed: int) -> list[tuple[int, float, float]]:
    """(epoch, loss, val NDCG@10) rows of the exported report's "Per epoch" table."""
    text = (_version_dir(trained, seed) / "assets" / "report.md").read_text()
    section = text.split("## Per epoch", 1)[1]
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \| [\d.]+ \| ([\d.]+) \|", section, re.M)
    return [(int(e), float(loss), float(ndcg)) for e, loss, ndcg in rows]


def test_both_runs_are_in_the_store_with_their_parameters(trained):
    runs = trained["runs"]
    assert len(runs) == 2 and {r.status for r in runs} == {"FINISHED"}
    assert runs[0].params["training.seed"] == "2"  # newest first: the second training
    manifest = json.loads((trained["root"] / "data/tiny/features/manifest.json").read_text())
    for seed, run in trained["by_seed"].items():
        assert run.params["model.name"] == "gmf"
        assert run.params["model.params.factors"] == "8"
        assert run.params["training.epochs"] == str(EPOCHS)
        assert run.params["data.checksum"] == manifest["checksum"]
        assert run.tags["peppercorn.source"] == "pipeline train"
        assert run.tags["peppercorn.config"].endswith(f"seed{seed}.yaml")


def test_every_epoch_is_recorded_as_in_the_exported_report(trained):
    client = trained["target"].client()
    for seed, run in trained["by_seed"].items():
        expected = _report_epochs(trained, seed)
        assert [e for e, _, _ in expected] == list(range(1, EPOCHS + 1))
        losses = sorted(client.get_metric_history(run.run_id, "train/loss"), key=lambda m: m.step)
        ndcgs = sorted(client.get_metric_history(run.run_id, "val/ndcg_at_10"),
                       key=lambda m: m.step)  # fmt: skip
        assert [m.step for m in losses] == [e for e, _, _ in expected]
        assert [round(m.value, 4) for m in losses] == [loss for _, loss, _ in expected]
        assert [round(m.value, 4) for m in ndcgs] == [ndcg for _, _, ndcg in expected]


def test_final_metrics_equal_the_exported_versions(trained):
    for seed, run in trained["by_seed"].items():
        exported = _exported_metrics(trained, seed)
        assert run.metrics["test/hr_at_10"] == exported["hr@10"]
        assert run.metrics["test/ndcg_at_10"] == exported["ndcg@10"]
        assert run.metrics["test/full_recall_at_10"] == exported["full_recall@10"]
        assert run.metrics["popularity/hr_at_10"] == exported["popularity_hr@10"]
        assert run.metrics["run/best_epoch"] == exported["best_epoch"]
        assert run.metrics["run/epochs"] == EPOCHS
    # Different seeds, different models: the two runs are not one run read twice.
    first, second = (_exported_metrics(trained, s) for s in SEEDS)
    assert first["logloss"] != second["logloss"]


def test_artifacts_hold_the_report_its_plot_and_the_config(trained):
    client = trained["target"].client()
    for seed, run in trained["by_seed"].items():
        assert {"config.yaml", "report"} <= set(run.artifacts)
        report = {f.path for f in client.list_artifacts(run.run_id, "report")}
        assert {"report/report.md", "report/loss.png"} <= report
        folder = Path(client.download_artifacts(run.run_id, "config.yaml", str(
            trained["root"] / f"download{seed}")))  # fmt: skip
        assert yaml.safe_load(folder.read_text())["training"]["seed"] == seed


def test_exported_versions_are_tagged_and_registered(trained):
    client = trained["target"].client()
    for seed, run in trained["by_seed"].items():
        folder = _version_dir(trained, seed)
        digest = hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
        assert run.tags["peppercorn.version"] == str(SEEDS.index(seed) + 1)
        assert run.tags["peppercorn.version_checksum"] == f"sha256:{digest}"
        assert Path(run.tags["peppercorn.version_uri"]).resolve() == folder.resolve()
    registered = client.search_model_versions("name = 'gmf'")
    by_run = {mv.run_id: mv for mv in registered}
    assert sorted(int(mv.version) for mv in registered) == [1, 2]
    for seed, run in trained["by_seed"].items():
        assert by_run[run.run_id].tags["peppercorn.version"] == str(SEEDS.index(seed) + 1)


def test_generated_tables_list_both_runs(trained, tmp_path):
    uri, readme = trained["target"].uri, tmp_path / "README.md"
    readme.write_text(README)
    old, new = trained["by_seed"][1], trained["by_seed"][2]
    args = ["--tracking-uri", uri, "--readme", str(readme), "--results", str(tmp_path)]
    assert report_main([*args, "--sources", "pipeline train"]) == 0
    every = (tmp_path / "quality_runs.md").read_text()
    assert every.index(f"`{new.run_id[:8]}`") < every.index(f"`{old.run_id[:8]}`")
    listed = json.loads((tmp_path / "quality_runs.json").read_text())["experiments"]["tiny"]
    assert [r["run_id"] for r in listed] == [new.run_id, old.run_id]
    # The README's table: the newest run of the model (seed 2, version 2), its figures as the
    # exported version wrote them, the popularity row, and the prose left alone.
    text = readme.read_text()
    assert "Prose before." in text and "Prose between." in text and "a stale table" not in text
    sampled = text.split("<!-- quality-table:tiny:begin -->")[1].split("end -->")[0]
    exported = _exported_metrics(trained, 2)
    row = next(line for line in sampled.splitlines() if line.startswith("| **gmf**"))
    assert f"| {exported['hr@10']:.3f} | {exported['ndcg@10']:.3f} |" in row
    assert f"`{new.run_id[:8]}`" in row and old.run_id[:8] not in sampled
    assert f"| most popular (training counts) |  | {exported['popularity_hr@10']:.3f} |" in sampled
    assert f"| {exported['full_recall@10']:.3f} |" in text.split("tiny/full:begin")[1]
    assert report_main([*args, "--sources", "pipeline train", "--check"]) == 0
    readme.write_text(text.replace("Prose between.", "Edited."))
    assert report_main([*args, "--sources", "pipeline train", "--check"]) == 0  # prose is free
    readme.write_text(text.replace(f"{exported['hr@10']:.3f}", "0.999"))
    assert report_main([*args, "--sources", "pipeline train", "--check"]) == 1


def test_a_readme_table_with_no_run_to_show_is_refused(trained, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    args = ["--tracking-uri", trained["target"].uri, "--readme", str(readme)]
    assert report_main([*args, "--results", str(tmp_path)]) == 2  # no bench.train run here
    assert "no finished bench.train run" in capsys.readouterr().err
    assert readme.read_text() == README and not (tmp_path / "quality_runs.md").exists()


def _run(run_id: str, model: str, ndcg: float, start: int, source: str = "bench.train"):
    metrics = {"test/hr_at_10": 0.70349, "test/ndcg_at_10": ndcg, "test/auc": 0.9,
               "run/best_epoch": 8.0, "run/epochs": 11.0, "run/train_seconds": 75.4,
               "run/train_samples_per_sec": 123456.7, "run/load_before": 0.53,
               "run/load_after": 2.0, "popularity/hr_at_10": 0.3087,
               "popularity/ndcg_at_10": 0.1642}  # fmt: skip
    params = {"model.name": model, "model.params.factors": "32", "training.refit": "true",
              "training.optimizer": "lazy_adam", "training.seed": "0"}  # fmt: skip
    tags = {"peppercorn.source": source, "peppercorn.model": model, "peppercorn.version": "4"}
    return TrackedRun(run_id, "ml", "", "FINISHED", start, params, metrics, tags)


def test_table_cells_are_formatted_as_worked_out_by_hand():
    run = _run("0123456789abcdef", "seqfism", 0.4385, 1796083200000)  # 2026-12-01 00:00 UTC
    line = runs_markdown([run_record(run)]).splitlines()[2]
    assert line == (
        "| `01234567` | 2026-12-01 00:00 | bench.train | seqfism | lazy_adam | 0 | 0.703 | "
        "0.439 | 0.900 | – | 8 / 11 (+8 refit) | 75 | 123,457 | 0.5 → 2.0 | 4 | – |"
    )


def test_the_readme_shows_each_models_newest_bench_run_best_first():
    runs = [  # newest first, as read_runs gives them
        _run("newgmf00", "gmf", 0.30, 3_000),
        _run("trainrun", "seqfism", 0.50, 2_500, source="pipeline train"),
        _run("newseq00", "seqfism", 0.40, 2_000),
        _run("oldgmf00", "gmf", 0.35, 1_000),
    ]
    table = quality_tables(runs, "store.db")["ml"]
    models = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| **")]
    assert models == ["| **seqfism** (factors 32)", "| **gmf** (factors 32)"]
    assert "`newseq00`" in table and "`newgmf00`" in table
    assert "trainrun" not in table and "oldgmf00" not in table
    with pytest.raises(ValueError, match="marks the quality tables other"):
        update_readme("<!-- quality-table:other:begin -->\n<!-- quality-table:other:end -->", {})


def test_bench_train_adds_its_figures_to_the_run_and_tables_it(tmp_path, monkeypatch, empty_store):
    import bench.train as bench_train

    _features(tmp_path, empty_store)
    config = _config(tmp_path, seed=3)
    monkeypatch.delenv("PEPPERCORN_TRACKING", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setitem(bench_train.PLAN, "tiny", {"gmf": {"training.epochs": 2}})
    monkeypatch.setattr(bench_train, "RESULTS", tmp_path / "results")
    assert bench_train.main(["--configs", str(config), "--out", "q"]) == 0
    (row,) = json.loads((tmp_path / "results" / "q.json").read_text())["runs"]
    (run,) = read_runs(TrackingTarget.from_config(load_config(config)))
    assert row["run_id"] == run.run_id and run.tags["peppercorn.source"] == "bench.train"
    assert run.metrics["run/load_before"] == row["load_before"]
    assert run.metrics["run/load_after"] == row["load_after"]
    exported = json.loads((tmp_path / "models/gmf/1/assets/metrics.json").read_text())
    table = (tmp_path / "results" / "q.md").read_text()
    line = next(line for line in table.splitlines() if f"`{run.run_id[:8]}`" in line)
    assert f"| bench.train | gmf | lazy_adam | 3 | {exported['hr@10']:.3f} |" in line
    assert "| 2 / 2 |" in line  # two epochs, no refit
    # With tracking off the same writer shows the run from the benchmark's own figures.
    cfg = load_config(config, {"training.epochs": 2})
    untracked = bench_train._untracked(row, cfg, {"run/load_before": row["load_before"]})
    (record,) = bench_train._records([{**row, "run_id": None}], [untracked])
    assert record["run"] == "untracked" and record["test"]["hr@10"] == exported["hr@10"]
    assert record["model_params"] == {"factors": "8", "item_bias": "false"}
