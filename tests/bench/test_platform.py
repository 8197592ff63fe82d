"""bench.platform's pure parts: config derivation, stdout parsing, phases, ratios, Markdown."""

from pathlib import Path

import yaml

from bench.platform_report import (
    derive_config,
    markdown,
    parse_stage,
    ratios,
    size_rows,
    train_phases,
    tree_total,
)
from peppercorn.config import Config

ROOT = Path(__file__).resolve().parents[2]


def test_derived_config_keeps_the_base_and_replaces_only_the_size_and_paths(tmp_path):
    base = yaml.safe_load((ROOT / "configs" / "platform.yaml").read_text())
    cfg = derive_config(base, 10_000_000, tmp_path / "10000000", epochs=1, users=5000)
    assert cfg["dataset"]["synthetic"]["events"] == 10_000_000
    assert cfg["dataset"]["synthetic"]["users"] == 5000
    assert cfg["dataset"]["synthetic"]["items"] == base["dataset"]["synthetic"]["items"]
    assert cfg["paths"] == {
        "data_root": str(tmp_path / "10000000" / "data"),
        "model_repository": str(tmp_path / "10000000" / "models"),
    }
    assert cfg["training"]["epochs"] == 1
    assert cfg["spark"] == base["spark"] and cfg["model"] == base["model"]
    assert base["dataset"]["synthetic"]["events"] == 50_000_000  # the base is not touched
    Config.model_validate(cfg)  # still a valid pipeline config


def _train_run() -> dict:
    metrics = '{\n "hr@10": 0.5,\n "wall_seconds": 20.0,\n "full_recall@50": 0.3\n}'
    lines = [[1.0, "loading"], [30.0, "epoch 1: loss 0.3  val HR@10 0.5"]]
    lines += [[41.0, line] for line in ["export: 4.0 s", *metrics.split("\n")]]
    lines.append([41.1, "exported file:///m/1"])
    samples = [[float(t), 100 + t] for t in range(0, 42, 2)]
    samples[12] = [24.0, 5000]  # the epochs' peak
    run = {"seconds": 42.0, "peak_rss_mb": 5000, "lines": lines, "samples": samples}
    run["printed"] = parse_stage("train", [line for _, line in lines])
    return run


def test_train_phases_split_the_process_at_its_printed_lines():
    run = _train_run()
    assert run["printed"]["metrics"]["full_recall@50"] == 0.3
    assert run["printed"]["export_seconds"] == 4.0
    phases = train_phases(run, interval=0.5)
    # Epochs end at the epoch line (30 s) and began wall_seconds (20 s) before; the export
    # ends at its line (41 s) and began 4 s before; the evaluation lies between.
    assert {k: v["seconds"] for k, v in phases.items()} == {
        "train: start-up + loading": 10.0, "train: epochs": 20.0,
        "train: evaluation": 7.0, "train: export": 4.0,
    }  # fmt: skip
    assert phases["train: epochs"]["peak_rss_mb"] == 5000
    assert phases["train: export"]["peak_rss_mb"] == 100 + 40
    assert train_phases({"lines": [], "printed": {}}, 0.5) == {}  # nothing printed: no split


def test_parse_stage_reads_each_commands_summary():
    gen = parse_stage("generate", ["datagen: 1000 events (10 malformed), 5 users, 3 rooms "
                                   "-> /d/raw in 12.5s"])  # fmt: skip
    assert gen == {"events_generated": 1000, "inner_seconds": 12.5}
    etl = parse_stage("etl", ["events: read 1000, kept 990, quarantined: none", "etl: 7.5 s"])
    assert etl == {"events_read": 1000, "events_kept": 990, "inner_seconds": 7.5,
                   "regenerated_raw": False}  # fmt: skip
    features = parse_stage("features", ["{", '  "users": 5,', '  "seconds": 3.25', "}"])
    assert features == {"inner_seconds": 3.25, "users": 5}


def _size(events: int, scale: float) -> dict:
    stage = {"seconds": 10.0 * scale, "peak_rss_mb": 1000}
    runs = {n: dict(stage) for n in ("generate", "etl", "features")}
    size = {"events": events, "stages": {**runs, "train": {**_train_run(), "seconds": 42 * scale}}}
    size["rows"] = size_rows(size, 0.5)
    return size


def test_rows_ratios_and_markdown():
    small, large = _size(10_000_000, 1.0), _size(50_000_000, 6.0)
    rows = {r["stage"]: r for r in small["rows"]}
    assert rows["etl"]["events_per_s"] == 1_000_000
    assert rows["make etl (etl + features)"]["seconds"] == 20.0
    assert rows["whole chain"]["seconds"] == 72.0
    assert rows["whole chain"]["peak_rss_mb"] == 5000
    found = {r["stage"]: r for r in ratios([large, small])}  # any order: smallest -> largest
    assert found["etl"]["wall_ratio"] == 6.0 and found["etl"]["linear"] == 5.0
    assert found["train: epochs"]["wall_ratio"] == 1.0  # phases come from the same lines
    assert ratios([small]) == []
    report = {
        "date": "2026-01-01T00:00:00+00:00", "git": {"commit": "abc", "dirty": True},
        "machine": {"cpu": "CPU", "cores": 2, "ram_gib": 23.4}, "config": "c.yaml",
        "overrides": "", "epochs": 1, "interval_s": 0.5, "notes": ["a note"],
        "sizes": [{**small, "quality": {"full_recall@50": 0.3,
                                        "popularity_full_recall@50": 0.1}}, large],
        "ratios": ratios([small, large]),
    }  # fmt: skip
    page = markdown(report)
    assert "## 10,000,000 events" in page and "## 50,000,000 events" in page
    assert "| etl | 10.0 | 1,000,000 | 0.98 |" in page
    assert "| etl | 6.0 | 1.0 | 5.0 |" in page
    assert "Recall@50 model 0.3000 vs popularity 0.1000 (beats popularity)" in page
    assert "- a note" in page


def test_tree_total_skips_a_child_sharing_its_parents_memory():
    rss = {1: 100, 2: 5000, 3: 5000, 4: 60, 5: 60}
    parents = {1: 0, 2: 1, 3: 2, 4: 2, 5: 4}  # 3: being spawned by the JVM (2); 5: forked by 4
    assert tree_total(rss, parents) == 100 + 5000 + 60
