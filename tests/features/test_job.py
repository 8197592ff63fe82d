import numpy as np
import pandas as pd
import pytest

from features import FeaturesError, run
from features.job import TABLES
from tests.features import cleandata, oracle
from tests.features.conftest import EVAL_NEGATIVES, HISTORY_LENGTH, config_for

KINDS = ["synthetic", "movielens-100k", "movielens-csv", "ncf"]


def _raw(built, df, column, vocab):
    tokens = built.vocab(vocab)["tokens"]
    return df[column].map(lambda i: tokens[i])


@pytest.mark.parametrize("kind", KINDS)
def test_outputs_follow_the_contract(spark, built, kind):
    b = built(kind)
    m = b.manifest()
    assert m["kind"] == kind and m["checksum"].startswith("sha256:")
    for name in TABLES:
        assert (b.root / m["paths"][name]).is_dir()
    types = {n: dict(spark.read.parquet(str(b.root / n)).dtypes) for n in TABLES}
    assert types["train"] == {"user_idx": "int", "item_idx": "int", "ts": "timestamp"}
    assert types["seen"] == {"user_idx": "int", "item_idx": "int"}
    want = {"user_idx": "int", "item_idx": "array<int>", "ts": "array<timestamp>"}
    assert types["history"] == want
    assert m["history_length"] == HISTORY_LENGTH
    for split in ("validation", "test"):
        assert types[split] == {"user_idx": "int", "item_idx": "int", "negatives": "array<int>"}
    for f in m["features"]:
        table = types[f"{f['table']}_profile"]
        want = {"categorical": "int", "dense": "float", "vector": "array<float>"}[f["type"]]
        assert table[f["name"]] == ("array<int>" if f.get("multivalent") else want), f
        if f["type"] == "vector":
            lengths = b.table(spark, f"{f['table']}_profile")[f["name"]].map(len)
            assert set(lengths) == {f["dim"]}
    tokens = oracle.token_order(set(b.clean.events.user_id) | set(b.clean.users.user_id))
    assert b.vocab("user_id")["tokens"] == ["<unk>", *tokens]
    assert m["counts"]["users"] == len(tokens)
    for name in ("train", "validation", "test", "seen", "history"):
        assert m["counts"][name] == len(b.table(spark, name))


@pytest.mark.parametrize("kind", KINDS)
def test_history_is_each_users_newest_training_items(spark, built, kind):
    # Oracle: pandas over the train table, newest first (ties: the larger item index is
    # newer, the split's rule), the first HISTORY_LENGTH kept.
    b = built(kind)
    train = b.table(spark, "train")
    want = {}
    for user, rows in train.groupby("user_idx"):
        rows = rows.sort_values(["ts", "item_idx"], ascending=False).head(HISTORY_LENGTH)
        want[int(user)] = (rows.item_idx.tolist(), [pd.Timestamp(t) for t in rows.ts])
    got = {
        int(r.user_idx): (list(r.item_idx), [pd.Timestamp(t) for t in r.ts])
        for r in b.table(spark, "history").itertuples()
    }
    assert got == want
    assert max(len(items) for items, _ in got.values()) == HISTORY_LENGTH  # the cap bites


@pytest.mark.parametrize("kind", KINDS)
def test_no_leakage_between_splits_and_negatives(spark, built, kind):
    b = built(kind)
    train, seen = b.table(spark, "train"), b.table(spark, "seen")
    seen_by_user = seen.groupby("user_idx").item_idx.agg(set)
    train_pairs = set(zip(train.user_idx, train.item_idx, strict=True))
    held = []
    n_items = b.manifest()["counts"]["items"]
    for split in ("validation", "test"):
        df = b.table(spark, split)
        pairs = set(zip(df.user_idx, df.item_idx, strict=True))
        assert not pairs & train_pairs, f"{split} pair also in train"
        assert len(pairs) == len(df), f"{split} has one row per user"
        held.append(pairs)
        for row in df.itertuples():
            negs = list(row.negatives)
            assert len(set(negs)) == len(negs)
            assert not set(negs) & seen_by_user[row.user_idx], "negative seen by its user"
            assert row.item_idx not in negs and all(1 <= n <= n_items for n in negs)
            unseen = n_items - len(seen_by_user[row.user_idx] | {row.item_idx})
            if split == "validation" or kind != "ncf":
                assert len(negs) == min(EVAL_NEGATIVES[kind], unseen)
    assert not held[0] & held[1]
    assert train_pairs | held[0] | held[1] <= set(zip(seen.user_idx, seen.item_idx, strict=True))


@pytest.mark.parametrize("kind", ["synthetic", "movielens-100k", "movielens-csv"])
def test_leave_one_out_matches_pandas(spark, built, kind):
    b = built(kind)
    want_test, want_val = oracle.leave_one_out(b.clean.events)
    for split, want in (("test", want_test), ("validation", want_val)):
        df = b.table(spark, split)
        got = set(
            zip(_raw(b, df, "user_idx", "user_id"), _raw(b, df, "item_idx", "item_id"), strict=True)
        )
        assert got == want, split
    n_pos = len(
        b.clean.events[b.clean.events.event != "impression"].drop_duplicates(["user_id", "item_id"])
    )
    assert len(b.table(spark, "train")) == n_pos - len(want_test) - len(want_val)


def test_users_with_few_positives_stay_in_train(spark, built):
    b = built("movielens-100k")
    users = set(_raw(b, b.table(spark, "test"), "user_idx", "user_id"))
    assert "12" not in users
    train = b.table(spark, "train")
    assert (_raw(b, train, "user_idx", "user_id") == "12").sum() == 2


def test_ncf_test_is_taken_as_given_and_ids_are_shifted(spark, built):
    b = built("ncf")
    assert b.vocab("item_id")["tokens"][1:] == [str(i) for i in range(30)]
    test = b.table(spark, "test")
    got = {
        (r.user_idx - 1, r.item_idx - 1, tuple(n - 1 for n in r.negatives))
        for r in test.itertuples()
    }
    given = b.clean.ncf_test
    want = {
        (int(r.user_id), int(r.item_id), tuple(int(n) for n in r.negatives))
        for r in given.itertuples()
    }
    assert got == want
    # Validation: each user's latest remaining rating, ties to the larger item id.
    ev = b.clean.events.astype({"user_id": int, "item_id": int})
    rest = ev.merge(
        given.astype({"user_id": int, "item_id": int})[["user_id", "item_id"]],
        how="left",
        indicator=True,
    ).query("_merge == 'left_only'")
    latest = rest.sort_values(["ts", "item_id"]).groupby("user_id").tail(1)
    val = b.table(spark, "validation")
    assert set(zip(val.user_idx - 1, val.item_idx - 1, strict=True)) == set(
        zip(latest.user_id, latest.item_id, strict=True)
    )
    assert len(b.table(spark, "train")) == len(ev) - len(given) - len(val)


def test_profiles_match_pandas(spark, built):
    b = built("synthetic")
    m, ev, fc = b.manifest(), b.clean.events, b.cfg.features
    ref = ev.ts.max()
    held = {(u, i) for u, i in oracle.leave_one_out(ev)[0] | oracle.leave_one_out(ev)[1]}
    inter = ev[(ev.event != "impression")]
    inter = inter[[(u, i) not in held for u, i in zip(inter.user_id, inter.item_id, strict=True)]]
    stats = {(f["table"], f["name"]) for f in m["features"] if f["type"] == "dense"}
    user_tokens = b.vocab("user_id")["tokens"]
    item_tokens = b.vocab("item_id")["tokens"]
    cats = b.vocab("category")["tokens"]

    want_u = oracle.activity(
        inter, "user_id", user_tokens[1:], ref, fc.windows_days, ["watch_seconds"]
    )
    dense_u = [c for c in want_u.columns]
    want_u = oracle.normalise(want_u, dense_u)
    got_u = (
        b.table(spark, "user_profile")
        .assign(user_id=lambda d: d.user_idx.map(lambda i: user_tokens[i]))
        .set_index("user_id")
    )
    for c in dense_u:
        assert ("user", c) in stats
        np.testing.assert_allclose(got_u.loc[want_u.index, c], want_u[c], atol=1e-5, err_msg=c)
    users = b.clean.users.set_index("user_id")
    for col in ("age_band", "gender", "city_tier", "device"):
        vocab = b.vocab(col)["tokens"]
        assert [vocab[i] for i in got_u.loc[users.index, f"{col}_idx"]] == list(users[col])
    item_cat = b.clean.items.set_index("item_id").categories.map(lambda c: c[0])
    for user, rows in inter.groupby("user_id"):
        share = rows.item_id.map(item_cat).value_counts(normalize=True)
        want = [share.get(c, 0.0) for c in cats]
        np.testing.assert_allclose(got_u.loc[user, "category_affinity"], want, atol=1e-6)

    want_i = oracle.activity(
        inter, "item_id", item_tokens[1:], ref, fc.windows_days, ["watch_seconds"]
    )
    items = b.clean.items.set_index("item_id")
    created = pd.to_datetime(items.created).dt.tz_localize("UTC")
    want_i["age_days"] = (ref - created.reindex(want_i.index)) / oracle.DAY
    imps = ev[ev.event == "impression"].groupby("item_id").size()
    clicks = inter[inter.event == "click"].groupby("item_id").size()
    want_i["impressions_all"] = imps.reindex(want_i.index).fillna(0)
    want_i["ctr"] = (clicks.reindex(want_i.index).fillna(0) / want_i.impressions_all).where(
        want_i.impressions_all > 0
    )
    dense_i = list(want_i.columns)
    want_i = oracle.normalise(want_i, dense_i)
    got_i = (
        b.table(spark, "item_profile")
        .assign(item_id=lambda d: d.item_idx.map(lambda i: item_tokens[i]))
        .set_index("item_id")
    )
    for c in dense_i:
        assert ("item", c) in stats
        np.testing.assert_allclose(got_i.loc[want_i.index, c], want_i[c], atol=1e-5, err_msg=c)
    tags = b.vocab("tag")["tokens"]
    for item, row in items.iterrows():
        assert sorted(tags[t] for t in got_i.loc[item, "tag_idx"]) == sorted(row.tags)
        hot = [float(c == row.categories[0]) for c in cats]
        assert list(got_i.loc[item, "category_multi_hot"]) == hot


def test_rerun_is_identical(spark, built):
    b = built("ncf")
    before = {name: b.table(spark, name) for name in TABLES}
    vocab_before = {p.name: p.read_text() for p in (b.root / "vocab").glob("*.json")}
    summary = run(b.cfg, spark)  # over its own previous output
    assert summary["checksum"] == b.summary["checksum"]
    assert b.manifest()["checksum"] == b.summary["checksum"]
    for name in TABLES:
        # history's item_idx is an array per user: its rows are keyed by user alone.
        key = ["user_idx"] if name == "history" else ["user_idx", "item_idx"]
        key = [k for k in key if k in before[name].columns]
        a, c = (
            d.sort_values(key).reset_index(drop=True) for d in (before[name], b.table(spark, name))
        )
        pd.testing.assert_frame_equal(a.astype(str), c.astype(str))
    assert {p.name: p.read_text() for p in (b.root / "vocab").glob("*.json")} == vocab_before
    assert not [p for p in b.root.iterdir() if "staging" in p.name or "retired" in p.name]


def test_missing_clean_data_is_a_clear_error(spark, tmp_path):
    cfg = config_for("synthetic", tmp_path)
    with pytest.raises(FeaturesError, match=r"clean/events: missing clean table"):
        run(cfg, spark)


def test_label_kind_without_matching_events_is_a_clear_error(spark, tmp_path):
    cfg = config_for("movielens-csv", tmp_path, label={"kind": "watch"})
    cleandata.write_clean(spark, cfg.dataset_root(), cleandata.movielens_csv())
    with pytest.raises(FeaturesError, match="label.kind='watch' selects no positives"):
        run(cfg, spark)
