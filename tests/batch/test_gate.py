"""The promotion gate's decisions, worked by hand."""

import pytest

from batch.gate import decide


@pytest.mark.parametrize(
    ("candidate", "serving", "margin", "promote"),
    [
        (0.30, 0.30, 0.0, True),  # equal is not worse
        (0.295, 0.30, 0.01, True),  # worse, but within the margin
        (0.289, 0.30, 0.01, False),  # worse by more than the margin
        (0.35, 0.30, 0.0, True),
    ],
)
def test_margin(candidate, serving, margin, promote):
    d = decide({"validation_ndcg@10": candidate}, {"validation_ndcg@10": serving}, 4, margin)
    assert d["promote"] is promote
    assert d["reason"].startswith("promoted" if promote else "refused")
    assert (d["serving_version"], d["serving"], d["candidate"]) == (4, serving, candidate)


def test_without_a_comparable_serving_version_the_candidate_passes():
    assert decide({"validation_ndcg@10": 0.1}, None, None, 0.0)["reason"].startswith(
        "no serving version"
    )
    d = decide({"validation_ndcg@10": 0.1}, {"hr@10": 0.9}, 2, 0.0)
    assert d["promote"] and "has no validation_ndcg@10" in d["reason"]
