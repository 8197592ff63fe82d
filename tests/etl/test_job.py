"""Job-level guarantees: identical reruns, atomic replacement, clear CLI errors."""

from __future__ import annotations

import pytest

import etl
from pipeline.cli import main
from tests.etl.conftest import make_config, summary_of, write_lines
from tests.etl.test_movielens import ITEMS, RATINGS, USERS


def write_ml100k(src):
    write_lines(src / "u.user", [line for line, _ in USERS], "latin-1")
    write_lines(src / "u.item", [line for line, _ in ITEMS], "latin-1")
    write_lines(src / "u.data", [line for line, _ in RATINGS])


def snapshot(spark, clean: str) -> dict:
    """Every clean table's rows, sorted, as plain tuples (arrays as tuples)."""
    out = {}
    for table in ("users", "items", "events", "quarantine"):
        frame = spark.read.parquet(f"{clean}/{table}").toPandas()
        rows = [
            tuple(tuple(v) if hasattr(v, "__len__") and not isinstance(v, str) else v for v in r)
            for r in frame.astype(object).where(frame.notna(), None).itertuples(index=False)
        ]
        out[table] = sorted(rows, key=repr)
    return out


@pytest.fixture
def ml_config(tmp_path):
    write_ml100k(tmp_path / "src")
    # URIs, not paths: nothing in the job may assume a local filesystem path.
    return make_config(f"file://{tmp_path / 'out'}", "movielens-100k", f"file://{tmp_path / 'src'}")


def test_rerun_gives_identical_output_and_crash_keeps_previous(spark, ml_config, tmp_path):
    root = tmp_path / "out" / ml_config.dataset.name
    first = etl.run(ml_config, spark)
    before, summary_before = snapshot(spark, first["output"]), summary_of(root)
    files_before = sorted(p.name for p in (root / "clean" / "events").iterdir())

    second = etl.run(ml_config, spark)
    assert snapshot(spark, second["output"]) == before
    assert summary_of(root) == summary_before
    assert sorted(p.name for p in (root / "clean" / "events").iterdir()) == files_before

    class Crash(RuntimeError):
        pass

    def crash_after_users(name: str) -> None:
        if name == "users":
            raise Crash("simulated crash mid-write")

    with pytest.raises(Crash):
        etl.run(ml_config, spark, on_written=crash_after_users)
    # The previous complete output is still in place, and no staging folder is left behind.
    assert snapshot(spark, first["output"]) == before
    assert summary_of(root) == summary_before
    assert sorted(p.name for p in root.iterdir()) == ["clean"]


def test_crash_on_first_run_publishes_nothing(spark, ml_config, tmp_path):
    def crash(name: str) -> None:
        if name == "events":
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        etl.run(ml_config, spark, on_written=crash)
    root = tmp_path / "out" / ml_config.dataset.name
    assert not (root / "clean").exists()


def test_cli_bad_config_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset:\n  kind: movielens-100k\n  colour: blue\n")
    assert main(["etl", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "dataset.colour" in err and len(err.splitlines()) == 1


def test_cli_missing_input_is_one_line_and_exit_2(spark, tmp_path, capsys):
    cfg = tmp_path / "missing.yaml"
    cfg.write_text(
        "dataset:\n  kind: movielens-100k\n  name: gone\n"
        f"  path: {tmp_path / 'nowhere'}\npaths:\n  data_root: {tmp_path / 'out'}\n"
    )
    assert main(["etl", "--config", str(cfg), "--skip-features"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: MovieLens 100K folder not found: {tmp_path / 'nowhere'}"
    assert spark.range(3).count() == 3  # the caller's session is left running


def test_cli_runs_etl_and_prints_counts(spark, ml_config, tmp_path, capsys):
    cfg = tmp_path / "ml.yaml"
    cfg.write_text(
        "dataset:\n  kind: movielens-100k\n  name: cli\n"
        f"  path: {ml_config.dataset.path}\npaths:\n  data_root: {tmp_path / 'cli'}\n"
    )
    assert main(["etl", "--config", str(cfg), "--skip-features"]) == 0
    out = capsys.readouterr().out
    assert "events: read 19, kept 8, quarantined:" in out
    assert f"clean data: {tmp_path / 'cli' / 'cli' / 'clean'}" in out
