"""Storage helpers on the local filesystem through Hadoop's FileSystem API."""

from __future__ import annotations

import pytest

from peppercorn import storage


def test_write_and_read_text_roundtrip(spark, tmp_path):
    uri = f"file://{tmp_path}/sub/summary.json"
    storage.write_text(spark, uri, '{"a": 1}\nsecond line')
    assert (tmp_path / "sub" / "summary.json").read_text() == '{"a": 1}\nsecond line'
    assert storage.read_text(spark, uri) == '{"a": 1}\nsecond line'
    assert storage.list_dir(spark, f"file://{tmp_path}/sub") == ["summary.json"]


def test_atomic_replace_swaps_complete_output(spark, tmp_path):
    target = str(tmp_path / "events")
    spark.range(3).write.parquet(target)
    storage.atomic_replace(spark, target, lambda staging: spark.range(5).write.parquet(staging))
    assert spark.read.parquet(target).count() == 5
    # Nothing but the target is left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events"]


def test_atomic_replace_keeps_previous_output_when_write_fails(spark, tmp_path):
    target = str(tmp_path / "events")
    spark.range(3).write.parquet(target)

    def failing_write(staging: str) -> None:
        spark.range(10).write.parquet(staging)
        raise RuntimeError("crash mid-job")

    with pytest.raises(RuntimeError, match="crash mid-job"):
        storage.atomic_replace(spark, target, failing_write)
    assert spark.read.parquet(target).count() == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events"]


def test_missing_file_raises(spark, tmp_path):
    with pytest.raises(FileNotFoundError):
        storage.read_text(spark, str(tmp_path / "nope.json"))
    storage.delete(spark, str(tmp_path / "nope"))  # no error
    assert not storage.exists(spark, str(tmp_path / "nope"))


def test_leftovers_of_a_hard_kill_are_repaired(spark, tmp_path):
    target = tmp_path / "events"
    # Killed between the two renames: the previous output sits under .retired-, plus a staging.
    spark.range(3).write.parquet(str(tmp_path / "events.retired-aaa"))
    spark.range(4).write.parquet(str(tmp_path / "events.staging-bbb"))
    done = storage.recover_leftovers(spark, str(target))
    assert done == ["restored events.retired-aaa to events"]
    assert spark.read.parquet(str(target)).count() == 3
    # A young staging folder may be a running job's: kept until it is stale.
    assert (tmp_path / "events.staging-bbb").exists()
    assert storage.recover_leftovers(spark, str(target), stale_after=0) == [
        "deleted stale events.staging-bbb"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events"]


def test_atomic_replace_restores_before_a_failing_write(spark, tmp_path):
    spark.range(3).write.parquet(str(tmp_path / "events.retired-ccc"))

    def broken(staging):
        raise RuntimeError("write failed")

    with pytest.raises(RuntimeError):
        storage.atomic_replace(spark, str(tmp_path / "events"), broken)
    assert spark.read.parquet(str(tmp_path / "events")).count() == 3  # nothing lost
