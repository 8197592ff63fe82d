import numpy as np

from features.negatives import sample_for_user, sample_negatives


def test_samples_are_distinct_unseen_and_in_range():
    seen = np.array([1, 2, 3, 50, 99])
    got = sample_for_user(7, seen, n_items=100, k=20, seed=2017, salt=2)
    assert len(got) == 20 and len(set(got.tolist())) == 20
    assert not set(got.tolist()) & set(seen.tolist())
    assert got.min() >= 1 and got.max() <= 99


def test_sampling_is_seeded_per_user_and_salt():
    seen = np.array([4, 5])
    a = sample_for_user(3, seen, 200, 10, 2017, 1)
    assert np.array_equal(a, sample_for_user(3, seen, 200, 10, 2017, 1))
    assert not np.array_equal(a, sample_for_user(4, seen, 200, 10, 2017, 1))
    assert not np.array_equal(a, sample_for_user(3, seen, 200, 10, 2017, 2))


def test_too_few_unseen_items_gives_all_of_them():
    got = sample_for_user(1, np.array([1, 2, 4, 6]), n_items=8, k=99, seed=0, salt=1)
    assert sorted(got.tolist()) == [3, 5, 7]


def test_spark_sampling_does_not_depend_on_partitioning(spark):
    rng = np.random.default_rng(0)
    seen_rows = [(int(u), int(i)) for u in range(1, 30) for i in rng.choice(np.arange(1, 60), 12)]
    seen = spark.createDataFrame(seen_rows, "user_idx int, item_idx int")
    held = spark.createDataFrame(
        [(u, 59 - u % 5) for u in range(1, 30)], "user_idx int, item_idx int"
    )

    def collect(parts):
        df = sample_negatives(held.repartition(parts), seen.repartition(parts), 60, 10, 5, 1)
        return {r["user_idx"]: list(r["negatives"]) for r in df.collect()}

    one, three = collect(1), collect(3)
    assert one == three
    by_user: dict[int, set] = {}
    for u, i in seen_rows:
        by_user.setdefault(u, set()).add(i)
    for u, negs in one.items():
        assert len(negs) == 10
        assert not set(negs) & by_user[u] and (59 - u % 5) not in negs
