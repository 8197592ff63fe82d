"""Synthetic live-streaming logs: the pipeline's embedded default dataset.

`generate(cfg, spark)` writes `<dataset root>/raw/` as a logging system would drop it
(layout: docs/data-contracts.md, section 1):

- `users/` CSV with header, `items/` JSON lines, `events/` JSON lines or CSV (one header per
  file), `_SUCCESS.json` with the parameters and counts;
- `_truth/` Parquet (`users`, `items`, `effects`, `live` when live windows are on): the hidden
  model, for tests and offline evaluation only. ETL must ignore it (Spark's readers skip
  `_`-prefixed paths).

Events come from sessions: a user is shown a slate of rooms chosen by popularity and a
category feed (exposure bias), clicks with probability sigmoid(hidden score + noise), then
watches for a time that grows with the score and sometimes gifts or follows (see
`datagen.world` for the score). Optionally rooms are created during the period and shown
mostly while live (`datagen.live`; `_truth/items.created`, `_truth/live`); no event ever
names a room before its creation. The log has exactly `synthetic.events` lines, and exactly
`round(malformed_fraction * events)` of them are malformed, each breaking one rule:

- `malformed_json` / `malformed_csv`: a line cut short (JSON) or with too few columns (CSV);
- `missing_user_id`: no `user_id` key (JSON) or an empty field (CSV);
- `unknown_event`: an event type outside impression/click/watch/gift/follow;
- `bad_timestamp`: a `ts` that is not an ISO-8601 time;
- `negative_watch_seconds`: a watch event with `watch_seconds` < 0;
- `unknown_user` / `unknown_item`: ids absent from `users/` / `items/`;
- `duplicate`: an exact copy of an earlier line (same `event_id`).

The data depends only on the config (seed included), not on Spark's partitioning.
"""

from datagen.job import GENERATOR_VERSION, generate, stale_reason
from datagen.malformed import MALFORMED_KINDS

__all__ = ["GENERATOR_VERSION", "MALFORMED_KINDS", "generate", "stale_reason"]
