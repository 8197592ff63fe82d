import json

from features.vocab import UNKNOWN, build_vocabs, encode, write_vocabs


def _tokens(spark, rows):
    return spark.createDataFrame(rows, "name string, token string")


def test_int_tokens_sort_numerically_and_strings_lexicographically(spark, tmp_path):
    rows = [("ids", t) for t in ["10", "9", "0", "9", "100"]]
    rows += [("words", t) for t in ["b", 'a"q', "é", "B", "b"]]
    vocabs, table = build_vocabs(_tokens(spark, rows), ["ids", "words", "absent"], 1)
    write_vocabs(spark, list(vocabs.values()), table, str(tmp_path))

    ids = json.loads((tmp_path / "ids.json").read_text())
    assert ids == {
        "name": "ids",
        "min_frequency": 1,
        "id_type": "int",
        "tokens": [UNKNOWN, "0", "9", "10", "100"],
    }
    words = json.loads((tmp_path / "words.json").read_text())
    assert words["id_type"] == "string"
    assert words["tokens"] == [UNKNOWN, "B", 'a"q', "b", "é"]  # code-point order
    absent = json.loads((tmp_path / "absent.json").read_text())
    assert absent["tokens"] == [UNKNOWN] and vocabs["absent"].size == 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "absent.json",
        "ids.json",
        "words.json",
    ]


def test_min_frequency_maps_rare_tokens_to_unknown(spark):
    rows = [("c", "x")] * 3 + [("c", "y")] * 2 + [("c", "z")]
    vocabs, _ = build_vocabs(_tokens(spark, rows), ["c"], 2)
    vocab = vocabs["c"]
    assert vocab.size == 3 and vocab.min_frequency == 2
    df = spark.createDataFrame([("x",), ("y",), ("z",), (None,)], "c string")
    encoded = encode(df.withColumn("k", df.c), vocab, "c", "c_idx").collect()
    pairs = sorted((r["k"] or "", r["c_idx"]) for r in encoded)
    assert pairs == [("", 0), ("x", 1), ("y", 2), ("z", 0)]


def test_mixed_int_and_string_tokens_are_strings(spark):
    vocabs, _ = build_vocabs(_tokens(spark, [("m", "2"), ("m", "10"), ("m", "x")]), ["m"], 1)
    assert vocabs["m"].id_type == "string"
    order = [r["token"] for r in vocabs["m"].table.orderBy("idx").collect()]
    assert order == ["10", "2", "x"]
