"""bench.serve_two_stage end to end at a tiny size: both servers, every field of the JSON."""

import json
import tempfile

import pytest

from bench.serve_two_stage import main

LEVEL = {"offered_rps", "achieved_rps", "p50_ms", "p99_ms", "max_ms", "errors", "server_mean_ms",
         "server_cores", "loadgen_cores", "server_cpu_ms_per_request", "load_average"}  # fmt: skip


@pytest.mark.slow
def test_a_tiny_run_writes_every_field_and_removes_its_repository(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where it builds
    (tmp_path / "tmp").mkdir()
    argv = ["--users", "2000", "--items", "500", "--seconds", "2", "--rates", "20",
            "--baseline-rates", "5", "--search-seconds", "1", "--debug-samples", "20",
            "--out", str(tmp_path / "out")]  # fmt: skip
    main(argv)
    r = json.loads((tmp_path / "out" / "serve_two_stage.json").read_text())
    assert {"date", "machine", "models", "two_stage", "one_stage", "target_met"} <= set(r)
    assert {"cpu", "cores", "ram_gib", "commit"} <= set(r["machine"])
    models = r["models"]
    assert models["retrieval"] == ["two_tower", 1] and models["ranker"] == ["neumf", 1]
    assert models["sizes_mb"]["neumf"] > 0 and models["peak_rss_mb"] > 0
    two = r["two_stage"]
    assert set(two["rates"]) == {"20"} and two["load_seconds"] > 0
    for level in two["rates"].values():
        assert set(level) >= LEVEL and level["errors"] == 0
        assert {"retrieve", "filter", "rank", "top_k", "request"} <= set(level["server_mean_ms"])
    assert two["search"]["runs"] and two["search"]["max_rps_within_target"] >= 0
    stages = two["stages_one_at_a_time"]
    assert stages["requests"] == 20 and {"retrieve", "round_trip"} <= set(stages["stages"])
    assert two["memory_at_end"]["peak_rss_mb"] > 0
    assert set(r["one_stage"]["rates"]) == {"5"} and r["one_stage"]["rates"]["5"]["errors"] == 0
    assert r["target_met"] is None  # no level at the target's 200 req/s
    md = (tmp_path / "out" / "serve_two_stage.md").read_text()
    assert "## Where the time goes" in md and "| two-stage | 20 |" in md
    assert not list((tmp_path / "tmp").iterdir())
