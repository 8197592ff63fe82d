"""One corpus of raw event lines through the ETL's rules (Spark) and peppercorn.event_rules
(Python): the same reason for every line, the same clean values for every kept one, and
`event_line` of every kept event read back by the ETL as that event.

The examples of the generated test are derandomised in the suite (the same ones every run);
PEPPERCORN_FUZZ_EXAMPLES=N explores N fresh ones (a finding there becomes a corpus line).
"""

from __future__ import annotations

import json
import math
import os
import re

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from etl.sources.synthetic import event_rules
from peppercorn.event_rules import EVENTS, event_csv_line, event_line, validate_event

TS = "2026-10-03T21:14:05Z"
BASE = {"event_id": "e1", "user_id": "u1", "item_id": "r1", "event": "click", "ts": TS}


def ev(drop=(), **fields) -> str:
    """A JSON line: the base click with `fields` replacing or adding keys, `drop` removed."""
    body = {**BASE, **fields}
    return json.dumps({k: v for k, v in body.items() if k not in drop}, ensure_ascii=False)


def raw(**tokens: str) -> str:
    """A JSON line whose fields in `tokens` are written as the given JSON text, verbatim."""
    body = {**BASE, **tokens}
    parts = [f'"{k}": {v}' if k in tokens else f'"{k}": {json.dumps(v)}' for k, v in body.items()]
    return "{" + ", ".join(parts) + "}"


def watch(value) -> str:
    return ev(event="watch", watch_seconds=value)


def gift(value) -> str:
    return ev(event="gift", gift_value=value)


# (line, the reason both must give: None = kept)
CORPUS = [
    (ev(), None),
    (watch(312.0), None),
    (gift(5), None),
    (ev(event="impression"), None),
    (ev(event="follow", extra={"nested": [1, 2]}), None),
    (ev(event=" Click "), None),
    (ev(event="WATCH", watch_seconds="  12  "), None),
    (ev(event="\tclick"), "unknown_event"),  # Spark's trim strips spaces only
    (ev(event="clic\u212a"), None),  # KELVIN SIGN lower-cases to k
    (ev(event="share"), "unknown_event"),
    (raw(event="1"), "unknown_event"),
    (raw(event="true"), "unknown_event"),
    (ev(event=""), "missing_event"),
    (ev(event="   "), "missing_event"),
    (ev(event=None), "missing_event"),
    (ev(drop=("event",)), "missing_event"),
    (ev(drop=("event_id",)), "missing_event_id"),
    (ev(event_id="  "), "missing_event_id"),
    (raw(event_id="123"), None),
    (raw(event_id="1.10"), None),  # "1.1": Spark keeps a number's value, not its text
    (raw(event_id="1e3"), None),
    (raw(event_id="-0"), None),
    (raw(event_id="123456789012345678901234567890"), None),
    (raw(event_id="0.000999"), None),
    (raw(event_id="true"), None),
    (raw(event_id='{"a": [1, 2.5, "x\u00e9\\ud83d\\ude00\\n\\u0001"], "b": null}'), None),
    (raw(event_id="[]"), None),
    (raw(event_id='"\\ud800"'), None),  # a lone surrogate: Spark stores "?"
    (raw(event_id="NaN"), None),
    (raw(event_id="-0.0"), None),
    (raw(event_id="5e-324"), None),  # Java prints 4.9E-324
    (raw(event_id="[1e7, 0.001, -1.5e-7]"), None),
    (ev(user_id=" u1 "), None),
    (ev(user_id="\tu1"), None),
    (ev(user_id="\u00a0"), None),  # no-break space: not blank to Spark
    (ev(user_id="ユーザー😀"), None),
    (ev(user_id=""), "missing_user_id"),
    (ev(drop=("item_id",)), "missing_item_id"),
    (ev(item_id=None), "missing_item_id"),
    (ev(drop=("ts",)), "missing_ts"),
    (ev(ts=""), "missing_ts"),
    (ev(ts="  "), "missing_ts"),
    (ev(ts="2026-13-01T00:00:00Z"), "bad_timestamp"),
    (ev(ts="2026-10-03T21:14:05"), "bad_timestamp"),
    (ev(ts="2026-10-03 21:14:05Z"), "bad_timestamp"),
    (ev(ts="2026-10-03t21:14:05z"), None),
    (ev(ts="2026-10-03T21:14:05+02:00"), None),
    (ev(ts="2026-10-03T21:14:05-00:00"), None),
    (ev(ts="2026-10-03T21:14:05+0200"), "bad_timestamp"),
    (ev(ts="2026-10-03T21:14:05+02"), "bad_timestamp"),
    (ev(ts="2026-10-03T21:14:05.1Z"), None),
    (ev(ts="2026-10-03T21:14:05.123456-02:30"), None),
    (ev(ts="2026-10-03T21:14:05.1234567Z"), "bad_timestamp"),
    (ev(ts="2026-10-03T21:14:05.Z"), "bad_timestamp"),
    (ev(ts="2024-02-29T00:00:00Z"), None),
    (ev(ts="2026-02-29T00:00:00Z"), "bad_timestamp"),
    (ev(ts="2026-04-31T00:00:00Z"), "bad_timestamp"),
    (ev(ts="2026-10-03T23:59:60Z"), "bad_timestamp"),
    (ev(ts="2026-10-03T24:00:00Z"), "bad_timestamp"),
    (ev(ts="2026-10-03T21:14:05+18:00"), None),
    (ev(ts="2026-10-03T21:14:05+18:01"), "bad_timestamp"),
    (ev(ts="2026-10-03T21:14:05+05:60"), "bad_timestamp"),
    (ev(ts=f"  {TS}  "), None),
    (ev(ts=f"\t{TS}"), "bad_timestamp"),
    (ev(ts=f"{TS}\n"), "bad_timestamp"),
    (ev(ts=f"{TS}junk"), "bad_timestamp"),
    (raw(ts="1791062045"), "bad_timestamp"),
    (ev(ts="-0001-01-01T00:00:00Z"), None),
    (ev(ts="-0000-01-01T00:00:00Z"), "bad_timestamp"),
    (ev(ts="-12026-10-03T21:14:05Z"), None),
    (ev(ts="0000-02-29T00:00:00Z"), None),
    (ev(ts="+12026-10-03T21:14:05Z"), None),
    (ev(ts="+2026-10-03T21:14:05Z"), "bad_timestamp"),
    (ev(ts="12026-10-03T21:14:05Z"), "bad_timestamp"),
    (ev(ts="+294248-10-03T21:14:05Z"), "bad_timestamp"),  # failed the whole ETL before
    (ev(ts="-290309-10-03T21:14:05Z"), "bad_timestamp"),
    (ev(ts="+999999999-10-03T21:14:05Z"), "bad_timestamp"),
    (ev(ts="1969-12-31T23:59:59.999999Z"), None),
    (ev(ts="１９７０-01-01T00:00:00Z"), "bad_timestamp"),
    (ev(event="watch"), "missing_watch_seconds"),
    (watch(None), "missing_watch_seconds"),
    (watch(""), "missing_watch_seconds"),
    (watch("abc"), "bad_watch_seconds"),
    (watch(-3), "negative_watch_seconds"),
    (watch(-0.0), None),
    (raw(event='"watch"', watch_seconds="-0"), None),
    (raw(event='"watch"', watch_seconds="NaN"), "bad_watch_seconds"),
    (raw(event='"watch"', watch_seconds="Infinity"), "bad_watch_seconds"),
    (raw(event='"watch"', watch_seconds="-Infinity"), "bad_watch_seconds"),
    (raw(event='"watch"', watch_seconds="1E400"), "bad_watch_seconds"),
    (raw(event='"watch"', watch_seconds="1e-400"), None),
    (raw(event='"watch"', watch_seconds="12.50"), None),
    (raw(event='"watch"', watch_seconds="true"), "bad_watch_seconds"),
    (raw(event='"watch"', watch_seconds="{}"), "bad_watch_seconds"),
    (raw(event='"watch"', watch_seconds="[1]"), "bad_watch_seconds"),
    (watch("NaN"), "bad_watch_seconds"),
    (watch("inf"), "bad_watch_seconds"),
    (watch("1.5d"), None),  # Java's parseDouble takes a type suffix
    (watch("0x1.8p1"), None),
    (watch("0x10"), "bad_watch_seconds"),
    (watch("1_000"), "bad_watch_seconds"),
    (watch("1,5"), "bad_watch_seconds"),
    (watch(".5"), None),
    (watch("5."), None),
    (watch("+5e+2"), None),
    (watch("\t12\t"), None),  # Java trims control characters too
    (watch("12\u00a0"), "bad_watch_seconds"),
    (watch("１２"), "bad_watch_seconds"),
    (watch("1.7976931348623159e308"), "bad_watch_seconds"),
    (watch(1.7976931348623157e308), None),
    (watch("\t"), "bad_watch_seconds"),  # not blank to Spark, not a number
    (ev(watch_seconds=30), None),  # a value on another kind of event is kept
    (ev(watch_seconds=""), None),
    (ev(watch_seconds=-1), "negative_watch_seconds"),
    (ev(event="gift"), "missing_gift_value"),
    (gift(-1), "negative_gift_value"),
    (gift("x"), "bad_gift_value"),
    (gift(" 5 "), None),
    (gift(0), None),
    (ev(event="gift", gift_value=1, watch_seconds="x"), "bad_watch_seconds"),
    (ev(event="watch", watch_seconds=1, gift_value=-2), "negative_gift_value"),
    (ev(user_id=None, event="share"), "missing_user_id"),
    (ev(event="share", ts="nope"), "unknown_event"),
    (ev(ts="nope", watch_seconds="x"), "bad_timestamp"),
    ('{"event": "share", "event_id": "e1", "user_id": "u1", "item_id": "r1", "ts": "'
     + TS + '", "event": "click"}', None),  # the last of duplicate keys counts
    (json.dumps({k.upper(): v for k, v in BASE.items()}), "missing_event_id"),
    ("[1, 2]", "malformed_json"),
    ('"a string"', "malformed_json"),
    ("42", "malformed_json"),
    ("null", "malformed_json"),
    ("{}", "missing_event_id"),
    ('{"event_id": "e1"', "malformed_json"),
    ('{"event_id": "e1",}', "malformed_json"),
    ('{"event_id": 012}', "malformed_json"),
    ('{"event_id": "e\u0001"}', "malformed_json"),
    ("\ufeff" + ev(), "malformed_json"),
    ("", "empty_line"),
    (" \t ", "empty_line"),
]  # fmt: skip


def python_outcome(line: str):
    """What the API would do with this line as a JSON body's event: (reason, Event | None)."""
    if re.fullmatch(r"[ \t\n\x0b\f\r]*", line):
        return "empty_line", None
    try:
        obj = json.loads(line)
    except ValueError:
        return "malformed_json", None
    event, rejection = validate_event(obj)
    return (rejection.reason if rejection else None), event


def spark_outcomes(spark, lines: list[str], fmt: str = "jsonl") -> dict[str, tuple]:
    """Each distinct line -> (reason, event_id, user_id, item_id, event, ts µs, watch, gift)."""
    df = spark.createDataFrame([(line,) for line in dict.fromkeys(lines)], "raw string")
    df = df.select("raw", F.lit(None).cast("binary").alias("raw_bytes"))
    df = df.withColumn("reason", F.lit(None).cast("string"))
    out = event_rules(df, fmt).select(
        "raw", "reason", "event_id", "user_id", "item_id", "event",
        F.unix_micros("ts").alias("ts"), "watch_seconds", "gift_value",
    )  # fmt: skip
    return {row["raw"]: tuple(row)[1:] for row in out.collect()}


def same_float(a, b) -> bool:
    return (a is None and b is None) or (
        a is not None and b is not None and a == b and math.copysign(1, a) == math.copysign(1, b)
    )


def clean(event) -> tuple:
    """The clean values of a Python Event, as spark_outcomes gives them."""
    micros = round(event.ts * 1_000_000)
    return (event.event_id, event.user_id, event.item_id, event.event, micros,
            event.watch_seconds, event.gift_value)  # fmt: skip


def mismatches(spark, lines: list[str], expected: dict[str, str | None] | None = None) -> list:
    """Every line where Spark and Python (or the expected reason) disagree, and every kept
    event whose event_line the ETL does not read back as the same event."""
    python = {line: python_outcome(line) for line in lines}
    kept = {line: event for line, (_, event) in python.items() if event is not None}
    written = {line: event_line(event) for line, event in kept.items()}
    spark_side = spark_outcomes(spark, [*lines, *written.values()])
    bad = []
    for line in lines:
        reason, event = python[line]
        got = spark_side[line]
        if got[0] != reason or (expected is not None and expected[line] != reason):
            bad.append((line, "reason", {"spark": got[0], "python": reason}))
        elif event is not None and not agree(got[1:], clean(event)):
            bad.append((line, "values", {"spark": got[1:], "python": clean(event)}))
    for line, event in kept.items():
        back = spark_side[written[line]]
        if back[0] is not None or not agree(back[1:], clean(event)):
            bad.append((written[line], "event_line", {"spark": back, "python": clean(event)}))
    return bad


def agree(spark_values: tuple, python_values: tuple) -> bool:
    return spark_values[:5] == python_values[:5] and all(
        same_float(a, b) for a, b in zip(spark_values[5:], python_values[5:], strict=True)
    )


def test_the_corpus_gets_the_same_reasons_and_values_from_spark_and_python(spark):
    assert len(CORPUS) >= 60
    expected = dict(CORPUS)
    assert len(expected) == len(CORPUS), "a corpus line is listed twice"
    bad = mismatches(spark, list(expected), expected)
    assert not bad, "\n".join(map(repr, bad))


def test_csv_lines_of_kept_events_read_back_as_the_same_events(spark):
    # A dataset with `synthetic.format: csv`: the events API writes CSV lines into its log.
    kept = [e for e in (python_outcome(line)[1] for line, _ in CORPUS) if e is not None]
    breaking = [e for e in kept if any(c in f for f in (e.event_id, e.user_id, e.item_id)
                                       for c in "\n\r")]  # fmt: skip
    for event in breaking:
        with pytest.raises(ValueError, match="line break"):
            event_csv_line(event)
    written = {event_csv_line(e): e for e in kept if e not in breaking}
    assert len(written) >= 20
    back = spark_outcomes(spark, list(written), "csv")
    bad = [(line, back[line], clean(e)) for line, e in written.items()
           if back[line][0] is not None or not agree(back[line][1:], clean(e))]  # fmt: skip
    assert not bad, "\n".join(map(repr, bad))


# ---- generated events ---------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=8)
_padded = st.tuples(
    st.sampled_from(["", " ", "  ", "\t", "\u00a0"]), st.sampled_from(["", " ", "\n"])
)
_nested = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=5,
)
# Float ids are left out: Java 17 prints some doubles longer than the shortest form.
_ids = st.one_of(_text, st.integers(), st.booleans(), st.none(), _nested, st.just(" u1 "))


@st.composite
def _timestamps(draw) -> str:
    year = draw(st.sampled_from(["2026", "1970", "0000", "-0001", "+12026", "9999", "12026"]))
    parts = [draw(st.integers(0, n)) for n in (13, 32, 25, 61, 61)]
    date = f"{year}-{parts[0]:02d}-{parts[1]:02d}"
    clock = f"{parts[2]:02d}:{parts[3]:02d}:{parts[4]:02d}"
    fraction = draw(st.sampled_from(["", ".", ".5", ".123456", ".1234567"]))
    offset = draw(st.sampled_from(["Z", "z", "+00:00", "-18:00", "+18:30", "+05:30", "+0530", ""]))
    sep = draw(st.sampled_from(["T", "T", "t", " "]))
    return f"{date}{sep}{clock}{fraction}{offset}"


@st.composite
def _numbers(draw):
    value = draw(st.floats() | st.integers(-10, 10**6))
    as_text = draw(st.sampled_from([None, "{}", " {} ", "{}d", "\t{}", "{!r}"]))
    return value if as_text is None else as_text.format(value)


_events = st.one_of(
    st.sampled_from(EVENTS).map(str.upper), st.sampled_from(EVENTS), _text, st.integers()
)
_objects = st.fixed_dictionaries(
    {
        "event_id": _ids,
        "user_id": _ids,
        "item_id": _ids,
        "event": st.tuples(_padded, _events).map(
            lambda p: f"{p[0][0]}{p[1]}{p[0][1]}" if isinstance(p[1], str) else p[1]
        ),
        "ts": st.one_of(_timestamps(), _timestamps(), _text, st.integers()),
        "watch_seconds": st.one_of(_numbers(), st.none(), _text),
        "gift_value": st.one_of(_numbers(), st.none(), _text),
    }
)


@settings(
    max_examples=int(os.environ.get("PEPPERCORN_FUZZ_EXAMPLES", "0")) or 3,
    derandomize=not os.environ.get("PEPPERCORN_FUZZ_EXAMPLES"),
    deadline=None,
    # One Spark job per example: shrinking would run hundreds; the message lists every line.
    phases=[Phase.explicit, Phase.generate],
)
@given(
    st.lists(
        st.tuples(_objects, st.sets(st.sampled_from(list(BASE) + ["watch_seconds"]), max_size=2)),
        min_size=150,
        max_size=150,
    )
)
def test_generated_events_get_the_same_reasons_and_values_from_spark_and_python(spark, objects):
    lines = [json.dumps({k: v for k, v in obj.items() if k not in drop}) for obj, drop in objects]
    bad = mismatches(spark, lines)
    assert not bad, "\n".join(map(repr, bad))
