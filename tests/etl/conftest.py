"""Helpers for the ETL tests: configs pointing at fixture folders written under tmp paths."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from peppercorn.config import Config


def make_config(
    data_root: Path | str, kind: str, path: Path | str | None = None, **dataset
) -> Config:
    """A config whose outputs go under `data_root` and whose input is `path` (paths or URIs)."""
    body = {"kind": kind, "name": f"t-{kind}", **dataset}
    if path is not None:
        body["path"] = str(path)
    return Config.model_validate(
        {
            "dataset": body,
            "paths": {"data_root": str(data_root)},
            "spark": {"master": "local[2]", "shuffle_partitions": 2},
        }
    )


def write_lines(path: Path, lines: list[str], encoding: str = "utf-8") -> None:
    """Write `lines` newline-terminated in `encoding`, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(f"{line}\n" for line in lines).encode(encoding))


def expected_summary(cases: list[tuple[str, str | None]]) -> dict:
    """The summary entry an honest job reports for lines whose fate the test decided."""
    reasons = Counter(reason for _, reason in cases if reason is not None)
    kept = sum(1 for _, reason in cases if reason is None)
    return {"read": len(cases), "kept": kept, "quarantined": dict(sorted(reasons.items()))}


def summary_of(root: Path) -> dict:
    """`clean/summary.json` read from the local filesystem."""
    return json.loads((root / "clean" / "summary.json").read_text())


def quarantine_counts(spark, clean: str, source: str) -> dict:
    """Reason → rows of `source` in the quarantine dataset."""
    rows = spark.read.parquet(f"{clean}/quarantine").where(f"source = '{source}'")
    return {r["reason"]: r["count"] for r in rows.groupBy("reason").count().collect()}
