"""Batch top-K against a numpy oracle of the saved model; partition replacement; candidates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from batch.job import BatchError, output_uri, run
from batch.scoring import load_counts
from tests.batch.conftest import make_config

DAY, NEXT_DAY = "2026-10-31", "2026-11-01"


def _oracle(built, k: int, pool=None) -> pd.DataFrame:
    """Top-k per user by hand: every item not seen, by score, ties by the lower index."""
    rows = []
    n_items = len(built.item_ids)
    for user in range(1, len(built.user_ids) + 1):
        items = [i for i in (pool or range(1, n_items + 1)) if i not in built.seen[user]]
        scores = built.score(user, items)
        best = sorted(zip(items, scores, strict=True), key=lambda t: (-t[1], t[0]))[:k]
        for rank, (item, score) in enumerate(best, 1):
            rows.append((built.user_ids[user - 1], rank, built.item_ids[item - 1], score))
    out = pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "score"])
    return out.sort_values(["user_id", "rank"]).reset_index(drop=True)


def _read(cfg, day=DAY) -> pd.DataFrame:
    df = pd.read_parquet(f"{output_uri(cfg)}/dt={day}")
    return df.sort_values(["user_id", "rank"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def three_runs(spark, dot_model):
    """The same config run for DAY twice, then for NEXT_DAY; returns (cfg, built, summaries)."""
    root, built = dot_model
    cfg = make_config(root, k=5)
    summaries = [run(cfg, spark, DAY), run(cfg, spark, DAY), run(cfg, spark, NEXT_DAY)]
    return cfg, built, summaries


def test_every_user_gets_the_oracle_top_k(three_runs):
    cfg, built, summaries = three_runs
    assert [(s["version"], s["users"], s["rows"]) for s in summaries] == [(1, 25, 125)] * 3
    got, want = _read(cfg), _oracle(built, 5)
    assert got[["user_id", "rank", "item_id"]].values.tolist() == (
        want[["user_id", "rank", "item_id"]].values.tolist()
    )
    np.testing.assert_allclose(got["score"], want["score"], rtol=1e-5)
    assert set(got["model"]) == {"neumf"} and set(got["version"]) == {1}


def test_rerun_replaces_the_day_and_keeps_other_days(three_runs):
    cfg, _, _ = three_runs
    whole = pd.read_parquet(output_uri(cfg))
    counts = whole.groupby(whole["dt"].astype(str)).size().to_dict()
    assert counts == {DAY: 125, NEXT_DAY: 125}
    assert not whole.duplicated(["dt", "user_id", "rank"]).any()


def test_model_is_loaded_once_per_worker_process(spark, three_runs, dot_model):
    key = f"{dot_model[0].resolve() / 'models'}/neumf/1"

    def probe(batches):
        for _ in batches:
            yield pd.DataFrame({"loads": [load_counts().get(key, 0)]})

    # Three runs over 2 partitions each on local[2]: every worker scored several partitions.
    # The probe is an Arrow UDF too, so it lands in the same pool of Python workers.
    loads = spark.range(0, 4, numPartitions=4).mapInPandas(probe, "loads int").toPandas()
    assert loads["loads"].max() == 1, loads["loads"].tolist()


def test_candidates_limit_the_pool_and_shipping_reads_the_same_model(spark, tmp_path, dot_model):
    root, built = dot_model
    pool = [2, 5, 7, 11, 13, 17, 19, 23]
    file = tmp_path / "candidates.txt"
    file.write_text("\n".join(built.item_ids[i - 1] for i in pool) + "\n\n")
    cfg = make_config(root, k=4, candidates=str(file), ship_model=True, output=str(tmp_path / "o"))
    assert run(cfg, spark, DAY)["candidates"] == len(pool)
    got, want = _read(cfg), _oracle(built, 4, pool)
    assert got["item_id"].tolist() == want["item_id"].tolist()
    np.testing.assert_allclose(got["score"], want["score"], rtol=1e-5)


def test_unknown_candidates_are_named(spark, tmp_path, dot_model):
    file = tmp_path / "candidates.txt"
    file.write_text("20\nnope\n")
    cfg = make_config(dot_model[0], candidates=str(file))
    with pytest.raises(BatchError, match=r"unknown to model neumf v1, e.g. \['nope'\]"):
        run(cfg, spark, DAY)


@pytest.mark.parametrize(
    ("version", "message"),
    [(None, "no exported version of model 'neumf'"), (7, "has no version 7")],
)
def test_missing_model_is_a_clear_error(spark, tmp_path, version, message):
    with pytest.raises(BatchError, match=message):
        run(make_config(tmp_path), spark, DAY, version)


def test_bad_day_is_refused(spark, dot_model):
    with pytest.raises(BatchError, match="expected a date like"):
        run(make_config(dot_model[0]), spark, "31/10/2026")


def test_cli_errors_are_one_line_exit_2(spark, tmp_path, dot_model, capsys):
    import shutil

    import yaml

    from pipeline.cli import main

    repo = tmp_path / "models" / "neumf"
    shutil.copytree(dot_model[1].path, repo / "1")
    (repo / "1" / "variables.npz").write_bytes(b"not the saved weights")
    config = tmp_path / "c.yaml"
    paths = {"data_root": str(tmp_path / "d"), "model_repository": str(tmp_path / "models")}
    config.write_text(yaml.safe_dump({"paths": paths}))
    assert main(["batch", "--config", str(config), "--dt", DAY]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model neumf v1 cannot be loaded" in err
    assert "checksum mismatch" in err and "variables.npz" in err, err
    assert main(["batch", "--config", str(config), "--dt", DAY, "--version", "9"]) == 2
    assert "has no version 9" in capsys.readouterr().err
