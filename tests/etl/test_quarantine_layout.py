"""The quarantine reads back with standard tools, whatever bytes the raw lines held.

Each source gets one raw table with a good line, lines that are not UTF-8, a whitespace-only
line and an empty one; the quarantine must hold each bad line's exact bytes and a readable
text, and read back with pandas and pyarrow (issue #14: invalid UTF-8 used to be written as
a Parquet string, which both refuse).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import etl
from tests.etl.conftest import make_config

# Lines as bytes, with the quarantine text and reason each must get (None: kept).
# b"\xe9" is "é" in Latin-1: a lone continuation-less lead byte in UTF-8, one U+FFFD.
BAD_BYTES = [
    (b"\xff\xfe bad", "\ufffd\ufffd bad", "invalid_utf8"),
    (b"caf\xe9 latin-1", "caf\ufffd latin-1", "invalid_utf8"),
    (b" \t ", " \t ", "empty_line"),  # was missing_event_id / malformed_*: trim() kept tabs
    (b"", "", "empty_line"),
    (b"\t", "\t", "empty_line"),
]


def raw_file(path: Path, lines: list[bytes], ending: bytes = b"\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(line + ending for line in lines))


def with_bad(good: list[bytes], bad_line: bytes) -> list[bytes]:
    """`good`, the bad lines (one with invalid bytes inside an otherwise good line), in
    between rather than at the end, so that the empty line is a real line of the file."""
    return [good[0], *(b for b, _, _ in BAD_BYTES), bad_line, *good[1:]]


EVENT = (
    b'{"event_id": "e%d", "user_id": "u1", "item_id": "r1", "event": "click", '
    b'"ts": "2026-10-03T21:14:05Z"}'
)
SYNTHETIC_BAD = EVENT.replace(b'"u1"', b'"u\xc3"') % 9


def write_synthetic(src: Path) -> None:
    raw_file(
        src / "users" / "part-00000.csv",
        [b"user_id,age_band,gender,city_tier,device,signup_date", b"u1,18-24,F,t1,ios,"],
    )
    raw_file(src / "items" / "part-00000.json", [b'{"item_id": "r1"}'])
    raw_file(src / "events" / "part-00000", with_bad([EVENT % 1, EVENT % 2], SYNTHETIC_BAD))


def write_ml100k(src: Path) -> None:
    # u.user is Latin-1: its bytes are kept as they are, its text decoded from Latin-1.
    raw_file(src / "u.user", [b"1|24|M|technician|85711", b"2|abc|F|caf\xe9|12345"])
    raw_file(src / "u.item", [b"1|Heat (1995)|15-Dec-1995||http://x/1|" + b"|".join([b"0"] * 19)])
    raw_file(src / "u.data", with_bad([b"1\t1\t5\t881250949"], b"1\t1\xa0\t4\t881250949"))


def write_mlcsv(src: Path) -> None:
    raw_file(src / "movies.csv", [b"movieId,title,genres", b"1,Heat (1995),Action"])
    # CRLF line ends: the bytes of a line never include its terminator.
    ratings = with_bad([b"1,1,4.0,964982703"], b"1,1,4.0,96498\xf0\x9f\x98")
    raw_file(src / "ratings.csv", [b"userId,movieId,rating,timestamp", *ratings], b"\r\n")


def write_ncf(src: Path) -> None:
    raw_file(src / "train.rating", [b"0\t0\t5\t874965758"])
    raw_file(src / "test.rating", [b"0\t1\t3\t888980240"])
    raw_file(src / "test.negative", with_bad([b"(0,1)\t2\t3"], b"(0,2)\t\xed\xa0\x80"))


# kind, writer, the table with the bad lines, its bad line with invalid bytes and that line's
# text (one U+FFFD per invalid sequence, as Python's errors="replace"), other quarantined rows.
SOURCES = {
    "synthetic": (write_synthetic, "events", SYNTHETIC_BAD, SYNTHETIC_BAD.decode(errors="replace"),
                  []),
    "movielens-100k": (write_ml100k, "events", b"1\t1\xa0\t4\t881250949",
                       "1\t1\ufffd\t4\t881250949",
                       [("users", b"2|abc|F|caf\xe9|12345", "2|abc|F|café|12345", "bad_age")]),
    "movielens-csv": (write_mlcsv, "events", b"1,1,4.0,96498\xf0\x9f\x98",
                      "1,1,4.0,96498\ufffd", []),
    "ncf": (write_ncf, "test_negative", b"(0,2)\t\xed\xa0\x80", "(0,2)\t\ufffd\ufffd\ufffd", []),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(SOURCES))
def test_quarantine_keeps_exact_bytes_and_reads_with_pandas_and_pyarrow(spark, tmp_path, kind):
    write, table, bad_line, bad_text, others = SOURCES[kind]
    out = tmp_path / "out"
    cfg = make_config(out, kind, None if kind == "synthetic" else tmp_path / "src")
    write(out / cfg.dataset.name / "raw" if kind == "synthetic" else tmp_path / "src")
    result = etl.run(cfg, spark)

    want = sorted(
        [(table, b, text, reason) for b, text, reason in BAD_BYTES]
        + [(table, bad_line, bad_text, "invalid_utf8"), *others]
    )
    quarantine = out / cfg.dataset.name / "clean" / "quarantine"
    frame = pd.read_parquet(quarantine)
    assert list(frame.columns) == ["source", "raw", "raw_bytes", "reason"]
    rows = zip(frame.source, frame.raw_bytes, frame.raw, frame.reason, strict=True)
    assert sorted((s, bytes(b), t, r) for s, b, t, r in rows) == want

    arrow = pq.read_table(quarantine)
    assert arrow.schema.field("raw_bytes").type == pa.binary()
    assert arrow.schema.field("raw").type == pa.string()
    columns = arrow.to_pydict()
    got = zip(*(columns[c] for c in ("source", "raw_bytes", "raw", "reason")), strict=True)
    assert sorted(got) == want

    counts = result["tables"][table]
    assert counts["quarantined"] == {"empty_line": 3, "invalid_utf8": 3}
    assert counts["read"] == counts["kept"] + 6
