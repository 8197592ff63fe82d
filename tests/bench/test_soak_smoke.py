"""bench.soak end to end, shortened: 8 s of mixed traffic with one hot swap and one corrupt
version, against a real server. Checks the bench's own machinery (every scheduled request
sent and accounted for, the swap seen in status and traffic, the report written), not the
server's figures, which `make bench-soak` reports."""

import json

import pytest

from bench.soak import main

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_soak_runs_with_a_swap_and_a_corrupt_version(tmp_path):
    main(["--seconds", "8", "--swap-every", "3", "--rate", "100", "--corrupt", "flipped",
          "--results", str(tmp_path)])  # fmt: skip
    r = json.loads((tmp_path / "soak.json").read_text())
    assert (tmp_path / "soak.md").read_text().startswith("# Soak test")
    assert r["requests"] == 800 and r["valid_requests"] + r["junk_requests"] == 800
    counted = sum(sum(x["statuses"].values()) for x in r["routes"].values())
    assert counted == 800
    assert "never_sent" not in r["junk_statuses"] and "never_sent" not in r["valid_errors"]
    kinds = [(s["kind"], s["t"]) for s in r["swaps"]]
    assert [k for k, _ in kinds] == ["good", "flipped", "good"], kinds
    good = r["swaps"][0]
    assert good["available_after_s"] is not None and good["answers_from_it"] > 0
    flipped = r["swaps"][1]
    assert flipped["error"].startswith("DATA_LOSS") and flipped["answers_from_it"] == 0
    res = r["resources"]
    assert res["start"]["rss_kb"] > 0 and res["end"]["fds"] > 0
    assert set(r["targets"]) >= {"valid_all_200", "rss_growth_under_5pct", "no_fd_growth"}
