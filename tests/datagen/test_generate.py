"""The synthetic generator, checked on its written files with independent validators."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import datagen.job as gen
from datagen import generate
from peppercorn.config import Config
from tests.datagen.conftest import SMALL_BLOCK_ROWS

EVENTS = ("impression", "click", "watch", "gift", "follow")
CSV_COLUMNS = ["event_id", "user_id", "item_id", "event", "ts", "watch_seconds", "gift_value"]


def make_config(root: Path, **synthetic) -> Config:
    base = {"users": 500, "items": 120, "events": 20_000, "malformed_fraction": 0.02}
    base.update(synthetic)
    return Config.model_validate(
        {"paths": {"data_root": str(root)}, "dataset": {"synthetic": base}}
    )


def read_lines(spark, path: Path) -> list[str]:
    return spark.read.text(str(path)).toPandas()["value"].tolist()


def event_lines(spark, raw: Path, fmt: str = "jsonl") -> list[str]:
    lines = read_lines(spark, raw / "events")
    return [x for x in lines if x != ",".join(CSV_COLUMNS)] if fmt == "csv" else lines


def parse_ts(value) -> bool:
    try:
        dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        return False
    return True


def classify(record: dict | None, users: set, items: set, seen: set) -> str | None:
    """Why a parsed event is invalid (None when valid): an oracle written from the contract."""
    if record is None:
        return "malformed_line"
    if not record.get("user_id"):
        return "missing_user_id"
    if record.get("event") not in EVENTS:
        return "unknown_event"
    if not parse_ts(record.get("ts")):
        return "bad_timestamp"
    if record["event"] == "watch" and float(record["watch_seconds"]) < 0:
        return "negative_watch_seconds"
    if record["user_id"] not in users:
        return "unknown_user"
    if record["item_id"] not in items:
        return "unknown_item"
    if record["event_id"] in seen:
        return "duplicate"
    seen.add(record["event_id"])
    return None


def parse_json(line: str) -> dict | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_csv(line: str) -> dict | None:
    fields = next(csv.reader(io.StringIO(line)))
    if len(fields) != len(CSV_COLUMNS):
        return None
    record = dict(zip(CSV_COLUMNS, fields, strict=True))
    return {k: (v if v != "" else None) for k, v in record.items()}


def validate(spark, raw: Path, fmt: str) -> tuple[list[dict], dict[str, int]]:
    users = set(pd.read_csv(next((raw / "users").glob("*.csv")), dtype=str)["user_id"])
    items = {json.loads(x)["item_id"] for x in read_lines(spark, raw / "items")}
    parse = parse_csv if fmt == "csv" else parse_json
    seen: set = set()
    valid, bad = [], {}
    for line in event_lines(spark, raw, fmt):
        record = parse(line)
        reason = classify(record, users, items, seen)
        if reason is None:
            valid.append(record)
        else:
            bad[reason] = bad.get(reason, 0) + 1
    return valid, bad


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties."""
    ranks = pd.Series(scores).rank().to_numpy()
    pos = labels.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@pytest.fixture(scope="module")
def small_blocks():
    # Several blocks even for small logs, so block seeding and partitioning are exercised.
    saved = gen.BLOCK_ROWS
    gen.BLOCK_ROWS = SMALL_BLOCK_ROWS
    yield
    gen.BLOCK_ROWS = saved


@pytest.fixture(scope="module")
def jsonl_run(spark, tmp_path_factory, small_blocks):
    root = tmp_path_factory.mktemp("jsonl")
    cfg = make_config(root, seed=11, files=3)
    summary = generate(cfg, spark)
    return cfg, root / "synthetic" / "raw", summary


def _with(cfg: Config, **synthetic) -> Config:
    out = cfg.model_copy(deep=True)
    for key, value in synthetic.items():
        setattr(out.dataset.synthetic, key, value)
    return out


# The platform's world (live windows, rooms created over time) is rebuilt in each Python
# worker from the seed: with 3 files two workers build it, with 1 file one does.
@pytest.mark.parametrize("run", ["jsonl_run", "platform_run"])
def test_same_seed_same_rows_whatever_the_partitioning(spark, run, request, small_blocks, tmp_path):
    cfg, raw, _ = request.getfixturevalue(run)
    first = {t: sorted(read_lines(spark, raw / t)) for t in ("users", "items", "events")}
    truth = pd.read_parquet(raw / "_truth" / "items")
    # Re-run into the same root with another file count: replaced in place, same rows.
    generate(_with(cfg, files=1), spark)
    again = {t: sorted(read_lines(spark, raw / t)) for t in ("users", "items", "events")}
    assert again == first
    pd.testing.assert_frame_equal(pd.read_parquet(raw / "_truth" / "items"), truth)
    assert len(list((raw / "events").glob("part-*"))) == 1
    assert sorted(p.name for p in raw.parent.iterdir()) == ["raw"]  # no staging left over

    other = _with(cfg, seed=cfg.dataset.synthetic.seed + 1)
    other.paths.data_root = str(tmp_path)
    generate(other, spark)
    other = sorted(read_lines(spark, tmp_path / "synthetic" / "raw" / "events"))
    assert len(other) == len(first["events"])
    assert len(set(other) & set(first["events"])) < len(other) // 10


def test_counts_follow_the_config(spark, jsonl_run):
    cfg, raw, summary = jsonl_run
    syn = cfg.dataset.synthetic
    assert len(event_lines(spark, raw)) == syn.events
    assert len(read_lines(spark, raw / "users")) == syn.users + 1  # header
    assert len(read_lines(spark, raw / "items")) == syn.items
    success = json.loads((raw / "_SUCCESS.json").read_text())
    assert success["counts"]["events"] == syn.events == summary["events"]
    assert success["parameters"]["seed"] == 11

    valid, _ = validate(spark, raw, "jsonl")
    kinds = pd.Series([r["event"] for r in valid]).value_counts()
    assert kinds["impression"] > 0.6 * len(valid)
    ctr = kinds["click"] / kinds["impression"]
    assert 0.03 < ctr < 0.4, ctr
    # Every click is followed by its watch unless the log block ended in between (one per
    # block) or the malformed-row planting broke one of the pair (binomial, 3 sigma).
    blocks = -(-syn.events // gen.BLOCK_ROWS)
    broken = 3 * np.sqrt(syn.malformed_fraction * (kinds["click"] + kinds["watch"]))
    assert abs(kinds["click"] - kinds["watch"]) <= blocks + broken
    assert 0 < kinds["gift"] < kinds["follow"] < kinds["click"]
    watched = [r for r in valid if r["event"] == "watch"]
    assert all(r["watch_seconds"] > 0 and r["gift_value"] is None for r in watched)
    assert all(r["gift_value"] > 0 for r in valid if r["event"] == "gift")
    start = dt.datetime(2026, 10, 1)
    stamps = [dt.datetime.strptime(r["ts"], "%Y-%m-%dT%H:%M:%SZ") for r in valid]
    assert start <= min(stamps) and max(stamps) < start + dt.timedelta(days=syn.days + 1)
    assert all(re.fullmatch(r"e\d{10}", r["event_id"]) for r in valid)


def test_malformed_lines_match_the_fraction_and_the_report(spark, jsonl_run):
    cfg, raw, _ = jsonl_run
    _, bad = validate(spark, raw, "jsonl")
    syn = cfg.dataset.synthetic
    assert sum(bad.values()) == round(syn.malformed_fraction * syn.events)
    reported = json.loads((raw / "_SUCCESS.json").read_text())["counts"]
    expected = {
        ("malformed_line" if k == "malformed_json" else k): v
        for k, v in reported["malformed_events_by_kind"].items()
        if v
    }
    assert bad == expected
    assert len(expected) == 8  # every kind occurs


def test_csv_format_with_its_own_malformed_lines(spark, tmp_path, small_blocks):
    cfg = make_config(tmp_path, format="csv", events=9_000, malformed_fraction=0.05, files=2)
    generate(cfg, spark)
    raw = tmp_path / "synthetic" / "raw"
    lines = read_lines(spark, raw / "events")
    headers = [x for x in lines if x == ",".join(CSV_COLUMNS)]
    assert 1 <= len(headers) <= 2 and len(lines) - len(headers) == 9_000
    valid, bad = validate(spark, raw, "csv")
    assert sum(bad.values()) == 450
    reported = json.loads((raw / "_SUCCESS.json").read_text())["counts"]
    assert bad["malformed_line"] == reported["malformed_events_by_kind"]["malformed_csv"]
    assert {r["event"] for r in valid} == set(EVENTS)


def test_hidden_preference_beats_popularity_on_impressions(spark, jsonl_run):
    _, raw, _ = jsonl_run
    valid, _ = validate(spark, raw, "jsonl")
    events = pd.DataFrame(valid)
    shown = events[events.event == "impression"][["user_id", "item_id"]].drop_duplicates()
    clicked = events[events.event == "click"][["user_id", "item_id"]].drop_duplicates()
    pairs = shown.merge(clicked.assign(label=1), how="left").fillna({"label": 0})

    users = pd.read_parquet(raw / "_truth" / "users")
    items = pd.read_parquet(raw / "_truth" / "items")
    effects = pd.read_parquet(raw / "_truth" / "effects")
    age = effects[effects.feature == "age_band"].rename(columns={"level": "age_band"})
    dev = effects[effects.feature == "device"].rename(columns={"level": "device"})
    df = pairs.merge(users, on="user_id").merge(items, on="item_id", suffixes=("_u", "_i"))
    df = df.merge(age[["age_band", "category", "effect"]], on=["age_band", "category"])
    df = df.merge(
        dev[["device", "category", "effect"]], on=["device", "category"], suffixes=("", "_d")
    )
    dot = np.array([np.dot(a, b) for a, b in zip(df.factors_u, df.factors_i, strict=True)])
    score = dot + df.bias_u + df.bias_i + df.effect + df.effect_d
    assert len(df) == len(pairs)

    label = df.label.to_numpy()
    auc_true, auc_pop = auc(score.to_numpy(), label), auc(df.popularity.to_numpy(), label)
    assert auc_true > 0.7, auc_true
    assert auc_true - auc_pop >= 0.05, (auc_true, auc_pop)


def test_events_are_produced_by_spark_workers(spark, small_blocks):
    cfg = make_config(Path("unused"), events=50_000)
    spec = gen.block_spec(cfg.dataset.synthetic)
    frame = gen.events_frame(spark, cfg.dataset.synthetic, spec, partitions=4)
    plan = frame._jdf.queryExecution().executedPlan().toString()
    assert "MapInArrow" in plan and "Range" in plan
    assert frame.rdd.getNumPartitions() == 4
    assert frame.count() == 50_000  # counted by the executors, nothing collected
    source = Path(gen.__file__).read_text()
    assert ".collect(" not in source and "toPandas" not in source


def test_rejects_non_synthetic_datasets(spark, tmp_path):
    cfg = Config.model_validate(
        {"paths": {"data_root": str(tmp_path)}, "dataset": {"kind": "ncf", "path": "x"}}
    )
    with pytest.raises(ValueError, match="only 'synthetic'"):
        generate(cfg, spark)


def test_cli_reports_config_errors(tmp_path, capsys):
    from pipeline.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset:\n  synthetic:\n    events: -5\n")
    assert main(["generate", "--config", str(bad)]) == 2
    assert "dataset.synthetic.events" in capsys.readouterr().err
    ncf = tmp_path / "ncf.yaml"
    ncf.write_text("dataset:\n  kind: ncf\n  path: /nowhere\n")
    assert main(["generate", "--config", str(ncf)]) == 2
    assert "only generates" in capsys.readouterr().err


def test_stale_raw_logs_are_named(spark, jsonl_run):
    from datagen import GENERATOR_VERSION, stale_reason
    from peppercorn import storage

    cfg, raw, _ = jsonl_run
    assert stale_reason(cfg, spark) is None
    other = cfg.model_copy(deep=True)
    other.dataset.synthetic.seed = 12
    other.dataset.synthetic.users = 501
    assert stale_reason(other, spark) == "dataset.synthetic changed: seed, users"
    marker = raw / "_SUCCESS.json"
    written = json.loads(marker.read_text())
    try:
        # Logs from before the live-platform parameters existed used their defaults: current.
        params = {
            k: v for k, v in written["parameters"].items() if not k.startswith(("live", "rooms"))
        }
        storage.write_text(spark, str(marker), json.dumps({**written, "parameters": params}))
        assert stale_reason(cfg, spark) is None
        assert stale_reason(_with(cfg, live_share=0.9), spark) == (
            "dataset.synthetic changed: live_share"
        )
        older = {**written, "generator_version": GENERATOR_VERSION - 1}
        storage.write_text(spark, str(marker), json.dumps(older))
        assert stale_reason(cfg, spark) == (
            f"written by generator version {GENERATOR_VERSION - 1}, "
            f"this is version {GENERATOR_VERSION}"
        )
    finally:
        storage.write_text(spark, str(marker), json.dumps(written))
    empty = cfg.model_copy(deep=True)
    empty.paths.data_root = str(raw.parent.parent / "nothing-here")
    assert stale_reason(empty, spark) == "no raw logs yet"
