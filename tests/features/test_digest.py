"""The digest taken while a table is written equals a separate scan of the written files."""

from features.manifest import observe_digest, table_digest


def test_observed_digest_equals_a_scan_of_what_was_written(spark, tmp_path):
    df = spark.createDataFrame(
        [(u, u % 7, [u, u + 1], None if u % 5 else 0.5) for u in range(1, 400)],
        "user_idx int, item_idx int, negatives array<int>, w double",
    ).repartition(3)
    observed, digest = observe_digest(df)
    observed.write.parquet(str(tmp_path / "t"))
    assert digest() == table_digest(spark.read.parquet(str(tmp_path / "t")))
    assert digest()[0] == 399


def test_observed_digest_of_an_empty_table(spark, tmp_path):
    df = spark.createDataFrame([], "user_idx int, item_idx int")
    observed, digest = observe_digest(df)
    observed.write.parquet(str(tmp_path / "t"))
    assert digest() == table_digest(spark.read.parquet(str(tmp_path / "t"))) == (0, digest()[1])
