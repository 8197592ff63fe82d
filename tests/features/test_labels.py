import datetime as dt

import pytest

from features.labels import positives
from peppercorn.config import LabelConfig

T0 = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
ROWS = [  # user, item, event, minutes after T0, rating, watch_seconds
    (1, 1, "impression", 0, None, None),
    (1, 1, "click", 1, None, None),
    (1, 1, "watch", 2, None, 12.0),
    (1, 2, "impression", 3, None, None),
    (1, 3, "watch", 4, None, 45.0),
    (1, 3, "watch", 9, None, 5.0),
    (2, 1, "rating", 5, 4.0, None),
    (2, 2, "rating", 6, 3.5, None),
    (2, 2, "rating", 8, 5.0, None),
    (2, 3, "follow", 7, None, None),
]
# Worked by hand from ROWS: (user, item) -> minutes of the latest qualifying event.
EXPECTED = {
    "any": {(1, 1): 2, (1, 3): 9, (2, 1): 5, (2, 2): 8, (2, 3): 7},
    "watch": {(1, 3): 4},
    "rating": {(2, 1): 5, (2, 2): 8},
}


@pytest.mark.parametrize("kind", ["any", "watch", "rating"])
def test_label_kinds(spark, kind):
    events = spark.createDataFrame(
        [(u, i, e, T0 + dt.timedelta(minutes=m), r, w) for u, i, e, m, r, w in ROWS],
        "user_idx int, item_idx int, event string, ts timestamp, rating double, "
        "watch_seconds double",
    )
    label = LabelConfig(kind=kind, rating_threshold=4.0, watch_seconds=30.0)
    got = {(r["user_idx"], r["item_idx"]): r["ts"] for r in positives(events, label).collect()}
    # Collected timestamps are naive local times; compare minute offsets from the min.
    want = EXPECTED[kind]
    assert set(got) == set(want)
    base = min(got.values())
    assert {k: (v - base).total_seconds() / 60 for k, v in got.items()} == {
        k: m - min(want.values()) for k, m in want.items()
    }
