"""bench.batch_two_stage: the projection and the report, by hand (the full run: bench/results)."""

from bench.batch_two_stage import PLATFORM_ITEMS, PLATFORM_USERS, markdown, project


def _report(users=1000, items=500, wall=50.0) -> dict:
    return {
        "command": "python -m bench.batch_two_stage --users 1000",
        "date": "2026-12-01T00:00:00+00:00",
        "git": {"commit": "0123456789abcdef", "dirty": False},
        "machine": {"cpu": "cpu", "ram_gib": 8.0},
        "cores": 2,
        "master": "local[*]",
        "users": users,
        "items": items,
        "k": 10,
        "candidates": 200,
        "load_before": [0.1, 0.1, 0.1],
        "load_after": [0.2, 0.1, 0.1],
        "build": {"build_seconds": 1.0, "sizes_mb": {"two_tower": 1.0, "neumf": 1.0}},
        "batch": {"seconds": wall, "peak_rss_mb": 900, "summary": {"rows": users * 10}},
        "sample": {
            "users": 100,
            "users_per_s": 1000.0,
            # 0.1 s of 100 users: 1 ms a user, 0.4 of it retrieval
            "stage_seconds": {"retrieve": 0.04, "filter": 0.01, "rank": 0.04, "top_k": 0.01},
            "full_catalogue_users": 5,
            "full_catalogue_seconds_per_user": 0.02,
        },
    }


def test_the_projection_scales_retrieval_with_the_items_and_everything_with_the_users():
    r = _report()
    p = project(r)
    assert p["core_ms_per_user"] == {"retrieve": 0.4, "filter": 0.1, "rank": 0.4, "top_k": 0.1}
    # 1000 users x 1 ms on 2 cores = 0.5 s of the 50 s wall: 49.5 s fixed.
    assert p["fixed_seconds"] == 49.5
    per_user = 0.4e-3 * PLATFORM_ITEMS / 500 + 0.6e-3
    low = (PLATFORM_USERS * per_user / 2 + 49.5) / 60
    high = 50.0 * PLATFORM_USERS / 1000 * per_user / 1e-3 / 60  # the wall, per user, scaled
    assert p["platform_wall_minutes"] == [round(low, 1), round(high, 1)]
    # The whole catalogue: 20 ms a user, 1000 users, 2 cores = 10 s: 0.2x the chain's 50 s.
    assert p["speedup"] == 0.2 and p["full_catalogue_hours"] == round(10 / 3600, 2)
    r["projection"] = p
    text = markdown(r)
    assert "REDUCED SIZE" in text and "Projected at 1,000,000 x 100,000" in text
    full = _report(PLATFORM_USERS, PLATFORM_ITEMS, wall=1200.0)
    full["projection"] = project(full)
    text = markdown(full)
    assert "REDUCED" not in text and "Wall time 20.0 min: meets the 30 min target" in text
