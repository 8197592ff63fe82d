"""MovieLens 100K's format (`u.data`, `u.user`, `u.item`, `u.genre`) into clean tables.

`u.item` and `u.user` are Latin-1.  Ids stay the source's integers, written as strings
("1", not "001").  Ages become the ML-1M age bands; `zip_prefix` is the zip's first
character (the US postal region; a letter for the few Canadian codes).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from etl.lines import read_lines, require, split_fields
from etl.tables import OUTCOME, Transformed, classified, event_columns, item_columns, kept
from etl.validate import as_double, as_int, blank, first_failure, mark_duplicates, mark_unknown
from peppercorn import storage
from peppercorn.config import join_uri

__all__ = [
    "GENRES",
    "extract",
    "genres_of",
    "items_frame",
    "ratings_frame",
    "transform",
    "users_frame",
]

# u.genre's names in index order; used when a folder has no u.genre.
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_ENCODING = "ISO-8859-1"
# Unix seconds beyond the year 3000 are corrupt, and would overflow Spark's timestamps.
_MAX_SECONDS = 32_503_680_000
_AGE_BANDS = ((18, "under_18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (50, "45-49"),
              (56, "50-55"))  # fmt: skip


def extract(spark, uri: str, side_only: bool = False) -> dict[str, DataFrame]:
    """The tables of an ML-100K folder as lines; `side_only`: users and items alone."""
    require(spark, uri, "MovieLens 100K folder")
    files = {"users": ("u.user", _ENCODING), "items": ("u.item", _ENCODING)}
    if not side_only:
        files["events"] = ("u.data", "UTF-8")
    return {
        name: read_lines(spark, require(spark, join_uri(uri, file), file), None, encoding)
        for name, (file, encoding) in files.items()
    }


def genres_of(spark, uri: str) -> list[str]:
    """Genre names by index from `u.genre` (a 19-line metadata file), else the standard list."""
    path = join_uri(uri, "u.genre")
    if not storage.exists(spark, path):
        return list(GENRES)
    pairs = []
    for line in storage.read_text(spark, path).splitlines():
        name, _, index = line.strip().rpartition("|")
        if name and index.isascii() and index.isdigit():
            pairs.append((int(index), name))
    return [name for _, name in sorted(pairs)] or list(GENRES)


def transform(raw: dict[str, DataFrame], genres: list[str]) -> Transformed:
    """Classify every line; clean users, items and rating events for the kept ones."""
    users = users_frame(raw["users"])
    items = items_frame(raw["items"], genres)
    events = ratings_frame(raw["events"], "\t", kept(users), kept(items))
    return Transformed(
        classified={"users": users, "items": items, "events": events},
        outputs={"users": kept(users), "items": kept(items), "events": kept(events)},
    )


def _id(value, offset: int):
    """A raw integer id shifted by `offset` (NCF's 0-based ids are ML-100K's minus one)."""
    return (value + F.lit(offset)).cast("string")


def users_frame(lines: DataFrame, id_offset: int = 0) -> DataFrame:
    """Classified `u.user` lines (`id|age|gender|occupation|zip`)."""
    df = split_fields(lines, "|", ["id", "age", "gender", "occupation", "zip"])
    uid, age = as_int("id"), as_int("age")
    gender = F.upper(F.trim("gender"))
    df = first_failure(
        df,
        [
            ("empty_line", blank()),
            ("malformed_line", F.col("_n") != 5),
            ("bad_user_id", uid.isNull() | (uid < 1)),
            ("bad_age", age.isNull() | (age < 1) | (age > 120)),
            ("bad_gender", ~gender.isin("M", "F")),
        ],
    )
    df = df.withColumn("user_id", _id(uid, id_offset))
    df = mark_duplicates(df, ["user_id"], [F.col("raw")])
    band = F.lit("56+")
    for limit, name in reversed(_AGE_BANDS):
        band = F.when(age < limit, F.lit(name)).otherwise(band)
    zip_prefix = F.upper(F.substring(F.trim("zip"), 1, 1))
    columns = [
        F.col("user_id"),
        band.alias("age_band"),
        gender.alias("gender"),
        F.lower(F.trim("occupation")).alias("occupation"),
        F.when(zip_prefix != "", zip_prefix).alias("zip_prefix"),
    ]
    return classified(df, columns)


def items_frame(lines: DataFrame, genres: list[str], id_offset: int = 0) -> DataFrame:
    """Classified `u.item` lines (`id|title|release|video|url|` then one 0/1 flag per genre)."""
    names = ["id", "title", "release", "video", "url"] + [f"g{i}" for i in range(len(genres))]
    df = split_fields(lines, "|", names)
    iid = as_int("id")
    release = F.trim("release")
    created = F.try_to_date(release, "d-MMM-yyyy")
    flags = [F.trim(f"g{i}") for i in range(len(genres))]
    bad_flag = F.lit(False)
    for flag in flags:
        bad_flag = bad_flag | ~flag.isin("0", "1")
    df = first_failure(
        df,
        [
            ("empty_line", blank()),
            ("malformed_line", F.col("_n") != len(names)),
            ("bad_item_id", iid.isNull() | (iid < 1)),
            ("bad_release_date", (release != "") & created.isNull()),
            ("bad_genre_flag", bad_flag),
        ],
    )
    df = df.withColumn("item_id", _id(iid, id_offset)).withColumn("created", created)
    df = mark_duplicates(df, ["item_id"], [F.col("raw")])
    picked = [F.when(flag == "1", F.lit(name)) for flag, name in zip(flags, genres, strict=True)]
    categories = F.filter(F.array(*picked), lambda g: g.isNotNull())
    title = F.trim("title")
    columns = item_columns(
        F.col("item_id"), F.when(title != "", title), categories, F.array(), F.col("created")
    )
    return classified(df, columns)


def ratings_frame(
    lines: DataFrame,
    sep: str,
    users: DataFrame | None,
    items: DataFrame | None,
    min_id: int = 1,
) -> DataFrame:
    """Classified `user<sep>item<sep>rating<sep>unix seconds` lines as rating events.

    `users`/`items` (clean tables) reject ratings of ids they lack; None skips that check.
    """
    df = split_fields(lines, sep, ["u", "i", "r", "t"])
    uid, iid, rating, seconds = as_int("u"), as_int("i"), as_double("r"), as_int("t")
    df = first_failure(
        df,
        [
            ("empty_line", blank()),
            ("malformed_line", F.col("_n") != 4),
            ("bad_user_id", uid.isNull() | (uid < min_id)),
            ("bad_item_id", iid.isNull() | (iid < min_id)),
            ("bad_rating", rating.isNull()),
            ("rating_out_of_range", (rating < 1) | (rating > 5)),
            ("bad_timestamp", seconds.isNull() | (seconds <= 0) | (seconds > _MAX_SECONDS)),
        ],
    )
    ok = F.col("reason").isNull()
    df = df.select(
        uid.cast("string").alias("user_id"),
        iid.cast("string").alias("item_id"),
        rating.alias("rating"),
        F.when(ok, F.timestamp_seconds(seconds)).alias("ts"),
        *OUTCOME,
    )
    if users is not None:
        df = mark_unknown(df, "user_id", users.select("user_id"), "unknown_user")
    if items is not None:
        df = mark_unknown(df, "item_id", items.select("item_id"), "unknown_item")
    df = mark_duplicates(df, ["user_id", "item_id", "ts"], [F.col("raw")])
    columns = event_columns(
        F.col("user_id"), F.col("item_id"), F.lit("rating"), F.col("ts"), rating=F.col("rating")
    )
    return classified(df, columns)
