"""The ETL's rules for one raw synthetic event (`etl.sources.synthetic.event_rules`), in Python.

`POST /v1/events` must refuse exactly what the ETL would quarantine, with the same reason code,
and keep exactly what it would keep, with the same clean values; tests/etl/
test_event_rules_parity.py runs one corpus through both. No pyspark here: serving imports it.

How Spark sees a JSON object's fields (`from_json` with a `string` schema), mirrored by
`spark_text`: a string as is (a lone surrogate becomes `?`); a number as Java prints it (an
integer exactly, a fraction or exponent through a double: `1e3` -> `1000.0`, `1E400` ->
`"Infinity"`, quotes included); `true`/`false`; an object or array as compact JSON.
Then every field is trimmed of spaces (only U+0020, as Spark's `trim`), `event` lower-cased,
`ts` parsed by `timestamp_micros`, `watch_seconds` and `gift_value` by `as_double`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from peppercorn.online_store import Event

__all__ = [
    "event_csv_line",
    "EVENTS",
    "FIELDS",
    "REASONS",
    "Rejection",
    "as_double",
    "event_line",
    "format_ts",
    "future_limit_micros",
    "spark_text",
    "timestamp_micros",
    "validate_event",
]

EVENTS = ("impression", "click", "watch", "gift", "follow")
FIELDS = ("event_id", "user_id", "item_id", "event", "ts", "watch_seconds", "gift_value")
# Every code validate_event gives, in the order the rules run (the ETL's, then the online one).
REASONS = (
    "malformed_json",
    *(f"missing_{name}" for name in ("event_id", "user_id", "item_id", "event", "ts")),
    "unknown_event",
    "bad_timestamp",
    *(f"{kind}_{name}" for name in ("watch_seconds", "gift_value")
      for kind in ("bad", "negative", "missing")),
    "future_timestamp",
)  # fmt: skip
_TS_SHAPE = "yyyy-MM-ddTHH:mm:ss[.ffffff]+hh:mm (or Z)"


@dataclass(frozen=True)
class Rejection:
    """Why an event is refused: the ETL's `reason` code, the `field` it is about, and a
    `message` naming both, e.g. `events[3].ts: not a timestamp ...: '2026-13-01'`."""

    reason: str
    field: str
    message: str


def validate_event(
    obj: Any, *, where: str = "event", now: float | None = None, max_skew_s: float = 300.0
) -> tuple[Event | None, Rejection | None]:
    """`(Event, None)` when the ETL would keep this JSON value (a parsed raw line), else
    `(None, Rejection)` with the ETL's reason; `where` prefixes messages (`events[3]`).

    With `now` (epoch seconds), an event stamped more than `max_skew_s` after it is refused
    as `future_timestamp`, after the ETL's rules. The ETL's rules across lines (unknown
    users and items, duplicates) are not applied: the online store keeps new users and items,
    and is idempotent by event_id.
    """

    def refuse(reason: str, name: str, what: str) -> tuple[None, Rejection]:
        return None, Rejection(
            reason, name, f"{where}.{name}: {what}" if name else f"{where}: {what}"
        )

    if not isinstance(obj, dict):
        return refuse("malformed_json", "", f"not a JSON object: {_shown(obj)}")
    text = {name: spark_text(obj.get(name)) for name in FIELDS}
    for name in ("event_id", "user_id", "item_id", "event", "ts"):
        if _missing(text[name]):
            return refuse(f"missing_{name}", name, "missing (absent, null or blank)")
    event = text["event"].strip(" ").lower()
    if event not in EVENTS:
        return refuse(
            "unknown_event", "event", f"not one of {', '.join(EVENTS)}: {_shown(text['event'])}"
        )
    micros = timestamp_micros(text["ts"])
    if micros is None:
        return refuse("bad_timestamp", "ts", f"not a timestamp {_TS_SHAPE}: {_shown(text['ts'])}")
    values = {}
    for name, kind in (("watch_seconds", "watch"), ("gift_value", "gift")):
        value = as_double(text[name])
        if value is None and not _missing(text[name]):
            return refuse(f"bad_{name}", name, f"not a finite number: {_shown(text[name])}")
        if value is not None and value < 0:
            return refuse(f"negative_{name}", name, f"negative: {_shown(text[name])}")
        if value is None and event == kind:
            return refuse(f"missing_{name}", name, f"required for a {kind} event")
        values[name] = value
    if now is not None and micros > future_limit_micros(now, max_skew_s):
        ahead = micros / 1e6 - now
        return refuse(
            "future_timestamp",
            "ts",
            f"{_shown(text['ts'])} is {ahead:.0f} s after the server's clock "
            f"(at most {max_skew_s:g} s allowed)",
        )
    ids = {name: text[name].strip(" ") for name in ("event_id", "user_id", "item_id")}
    return Event(**ids, event=event, ts=micros / 1_000_000, **values), None


def future_limit_micros(now: float, max_skew_s: float) -> int:
    """The newest `ts` (epoch microseconds) accepted at `now`: later is `future_timestamp`."""
    return math.floor((now + max_skew_s) * 1_000_000)


def event_csv_line(event: Event) -> str:
    """The raw-log CSV line (`synthetic.format: csv`; columns of FIELDS, RFC-4180 quoting, an
    empty field for null) that the ETL reads back as `event`'s clean values."""
    values = [event.event_id, event.user_id, event.item_id, event.event,
              format_ts(round(event.ts * 1_000_000)),
              "" if event.watch_seconds is None else repr(float(event.watch_seconds)),
              "" if event.gift_value is None else repr(float(event.gift_value))]  # fmt: skip
    return ",".join(_csv_field(v) for v in values)


def _csv_field(value: str) -> str:
    # Quote what would split the line; a quote inside is doubled (RFC 4180). A line break
    # cannot be kept: the ETL reads the log line by line.
    if "\n" in value or "\r" in value:
        raise ValueError(f"a CSV raw log cannot hold a field with a line break: {value[:40]!r}")
    if any(c in value for c in ',"\n\r') or value != value.strip(" "):
        return '"' + value.replace('"', '""') + '"'
    return value


def event_line(event: Event) -> str:
    """The raw-log JSON line (no line break) that the ETL reads back as `event`'s clean values;
    `ts` in ISO-8601 with microseconds and `+00:00`. For events `validate_event` accepted."""
    body = {
        "event_id": event.event_id,
        "user_id": event.user_id,
        "item_id": event.item_id,
        "event": event.event,
        "ts": format_ts(round(event.ts * 1_000_000)),
        "watch_seconds": event.watch_seconds,
        "gift_value": event.gift_value,
    }
    # Non-ASCII as is (valid UTF-8 for the text reader); control characters are escaped, so a
    # line never breaks.
    return json.dumps(body, ensure_ascii=False, allow_nan=False)


# ---- values as Spark sees them -----------------------------------------------------------------


def spark_text(value: Any) -> str | None:
    """A JSON value (as `json.loads` gives it) as Spark's `from_json` gives a `string` field."""
    if value is None or isinstance(value, str):
        if value is None or value.isascii():  # the usual case, and no surrogate in it
            return value
        # Spark stores strings as UTF-8, where Java writes an unpaired surrogate as "?".
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, float):
        return _java_double(value)
    return _jackson(value)


def _jackson(value: Any) -> str:
    # Jackson's compact JSON of a nested value (how Spark keeps a non-string token as text).
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, str):
        return f'"{_jackson_escape(value)}"'
    if isinstance(value, dict):
        return (
            "{" + ",".join(f'"{_jackson_escape(k)}":{_jackson(v)}' for k, v in value.items()) + "}"
        )
    return "[" + ",".join(_jackson(v) for v in value) + "]"


_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _jackson_escape(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif code < 0x20 or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04X}")
        elif code > 0xFFFF:  # as its UTF-16 surrogate pair, escaped
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _java_double(x: float) -> str:
    # Java's Double.toString (the shortest form of Java 19+; Java 17 prints a longer form for
    # a few values, e.g. 1e23 -> 9.999999999999999E22): a number-valued id may differ there.
    if math.isnan(x):
        return '"NaN"'
    if math.isinf(x):
        return '"Infinity"' if x > 0 else '"-Infinity"'
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    sign, x = ("-" if x < 0 else ""), abs(x)
    digits, exp = _shortest_digits(x)
    if 1e-3 <= x < 1e7:
        if exp >= 0:
            whole, frac = digits[: exp + 1].ljust(exp + 1, "0"), digits[exp + 1 :] or "0"
        else:
            whole, frac = "0", "0" * (-exp - 1) + digits
        return f"{sign}{whole}.{frac}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exp}"


def _shortest_digits(x: float) -> tuple[str, int]:
    """The significant digits of x's shortest decimal and the exponent of the first one."""
    _, tup, exponent = Decimal(repr(x)).as_tuple()
    digits = "".join(map(str, tup)).rstrip("0")
    exp = len(tup) - 1 + exponent
    if len(digits) == 1:
        # Java writes at least two digits and then picks the closer one (5e-324 -> 4.9E-324).
        two = f"{Decimal(x):.1e}"
        if float(two) == x:
            mantissa, _, e = two.partition("e")
            return mantissa.replace(".", "").rstrip("0") or "0", int(e)
    return digits, exp


def _missing(text: str | None) -> bool:
    return text is None or text.strip(" ") == ""


# Java's Double.parseDouble grammar, which Spark's cast from string to double uses; special
# values (NaN, Infinity, Spark's inf/nan) are not finite, so they need no exact mirror.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?")
_HEX = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?|[0-9a-fA-F]*\.[0-9a-fA-F]+)[pP][+-]?[0-9]+[fFdD]?")


def as_double(text: str | None) -> float | None:
    """The field as the ETL's `as_double`: a finite double, else None (not a number, NaN,
    infinite or overflowing)."""
    if text is None:
        return None
    # Spark trims spaces, then Java trims every character up to U+0020.
    body = text.strip("".join(map(chr, range(0x21))))
    try:
        if _DECIMAL.fullmatch(body):
            value = float(body.rstrip("fFdD"))
        elif _HEX.fullmatch(body):
            value = float.fromhex(body.rstrip("fFdD"))
        else:
            return None
    except OverflowError:  # float.fromhex refuses what Java rounds to Infinity
        return None
    return value if math.isfinite(value) else None


# What `try_to_timestamp(ts, "yyyy-MM-dd'T'HH:mm:ss[.SSSSSS]XXX")` accepts in Spark 4.1 (strict
# java.time, case-insensitive): a year of 4 digits, or '-' and 4 or 5 (not zero), or '+' and 5;
# 1 to 6 fraction digits; 'Z' or an offset +hh:mm up to 18:00. Longer years are refused by the
# ETL's guard: beyond Spark's microsecond range they fail the whole job.
_TS = re.compile(
    r"(?P<year>[0-9]{4}|-[0-9]{4,5}|\+[0-9]{5})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"[Tt](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,6}))?(?:[Zz]|(?P<sign>[+-])(?P<oh>[0-9]{2}):(?P<om>[0-9]{2}))"
)


def timestamp_micros(text: str | None) -> int | None:
    """The ETL's `ts` (trimmed of spaces) as epoch microseconds; None where it is refused."""
    match = _TS.fullmatch(text.strip(" ")) if text is not None else None
    if match is None:
        return None
    year, month, day = (int(match[name]) for name in ("year", "month", "day"))
    hour, minute, second = (int(match[name]) for name in ("hour", "minute", "second"))
    if match["year"].startswith("-") and year == 0:
        return None
    offset = 0
    if match["sign"]:
        oh, om = int(match["oh"]), int(match["om"])
        offset = (oh * 3600 + om * 60) * (-1 if match["sign"] == "-" else 1)
        if om > 59 or abs(offset) > 18 * 3600:
            return None
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    fraction = int((match["fraction"] or "").ljust(6, "0"))
    return (seconds - offset) * 1_000_000 + fraction


_EPOCH = _dt.datetime(1970, 1, 1)


def format_ts(micros: int) -> str:
    """Epoch microseconds as the raw log's `ts`: `yyyy-MM-ddTHH:mm:ss.ffffff+00:00`, a year
    outside 0000-9999 written as `timestamp_micros` reads it back."""
    try:  # years 1-9999, every event in practice: datetime's C formatting
        return (_EPOCH + _dt.timedelta(microseconds=micros)).isoformat(
            timespec="microseconds"
        ) + "+00:00"
    except OverflowError:
        pass
    days, rest = divmod(micros, 86_400_000_000)
    year, month, day = _civil_from_days(days)
    clock = (_dt.datetime.min + _dt.timedelta(microseconds=rest)).strftime("%H:%M:%S.%f")
    # Spark's year: 4 digits, or a sign beyond them ('+' only for 5 digits or more).
    shown = f"{year:04d}" if 0 <= year <= 9999 else f"{year:+05d}" if year < 0 else f"+{year:05d}"
    return f"{shown}-{month:02d}-{day:02d}T{clock}+00:00"


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if _is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(year: int, month: int, day: int) -> int:
    # Days since 1970-01-01 in the proleptic Gregorian calendar, any year (Hinnant's method);
    # Python's datetime stops at years 1..9999.
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


def _shown(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
