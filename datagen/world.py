"""The hidden world behind the synthetic logs: users, rooms and the preference model.

Everything here is small (one row per user or room) and built on the driver with numpy
from the config's seed; the event simulation (`datagen.sessions`) only reads it.

Hidden click model, for user u shown room i (also documented for `_truth/` readers):

    score(u, i) = factors_u . factors_i + bias_u + bias_i
                  + effect[age_band_u, category_i] + effect[device_u, category_i]
    P(click)    = sigmoid(score(u, i) + N(0, CLICK_NOISE^2))

Latent factors cluster around per-category centroids (each user has one or two favourite
categories), so taste is shared within a category and is learnable from few interactions.
`bias_u` carries a global intercept and a city-tier effect; `bias_i` is correlated with
popularity (popular rooms are somewhat better), which is what a popularity baseline exploits.

With `rooms_at_start` < 1 or `live_share` > 0 the world also has a timeline (`datagen.live`):
rooms created during the period and live windows, drawn from a random stream of their own so
the rest of the world is the same as without them.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import numpy as np

from datagen.live import DAY, Timeline, build_timeline, room_birth
from peppercorn.config import SyntheticConfig

__all__ = [
    "AGE_BANDS",
    "CITY_TIERS",
    "CLICK_NOISE",
    "DEVICES",
    "GENDERS",
    "World",
    "build_world",
    "category_names",
    "id_width",
]

AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
GENDERS = ("female", "male")
CITY_TIERS = ("tier1", "tier2", "tier3", "tier4")
DEVICES = ("android", "ios", "pc")
_AGE_P = (0.30, 0.32, 0.20, 0.12, 0.06)
_GENDER_P = (0.45, 0.55)
_TIER_P = (0.20, 0.30, 0.30, 0.20)
_DEVICE_P = (0.55, 0.35, 0.10)

_CATEGORY_NAMES = (
    "gaming", "music", "chat", "dance", "outdoor", "food",
    "education", "sports", "beauty", "tech", "travel", "pets",
)  # fmt: skip
_TAGS = (
    "fps", "moba", "chill", "pk", "late-night", "newbie-friendly", "karaoke", "guitar",
    "asmr", "talk", "kpop", "street", "fishing", "hiking", "mukbang", "cooking",
    "tutorial", "exam-prep", "live-match", "fitness", "makeup", "fashion", "coding",
    "gadgets", "vlog", "city-walk", "cats", "dogs", "retro", "speedrun", "duet", "q-and-a",
)  # fmt: skip

# Scales of the hidden model, chosen so that about one impression in five is clicked and
# preference (not popularity) explains most of which ones.
_TASTE_NORM = 2.0  # length of the category centroid part of a latent vector
_FACTOR_NOISE = 0.35  # per-dimension individual deviation from the centroids
_INTERCEPT = -4.0
_TIER_EFFECT = (0.2, 0.1, -0.1, -0.2)
_ITEM_POP_TO_BIAS = 0.35
_POP_SIGMA = 1.2  # spread of log exposure popularity (Zipf-like head)
CLICK_NOISE = 0.5
_BROWSE_FAVOURITE_BOOST = 3.0  # how much the category feed leans to a user's favourites

# Relative activity by hour of day (UTC): quiet nights, an evening peak.
_HOURLY = (
    1.0, 0.7, 0.4, 0.25, 0.2, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 1.0,
    1.1, 1.0, 0.9, 0.9, 1.0, 1.2, 1.5, 1.9, 2.3, 2.5, 2.2, 1.6,
)  # fmt: skip


def category_names(n: int) -> list[str]:
    """Names of the first `n` room categories (readable ones first, then numbered)."""
    named = list(_CATEGORY_NAMES[:n])
    return named + [f"category{k:02d}" for k in range(len(named), n)]


def id_width(count: int, minimum: int) -> int:
    """Zero-padded width of ids 0..count-1 (at least `minimum` digits)."""
    return max(minimum, len(str(max(count - 1, 0))))


def _cumulative(weights: np.ndarray) -> np.ndarray:
    # Normalised so the last entry is exactly 1.0: a uniform draw in [0, 1) never falls off
    # the end of `searchsorted`.
    cum = np.cumsum(weights, axis=-1, dtype=np.float64)
    return cum / cum[..., -1:]


@dataclass(frozen=True)
class World:
    """Users, rooms and the hidden preference model; arrays indexed by user/room index."""

    start_epoch: int  # start_date 00:00 UTC, seconds since the epoch
    days: int
    # users
    age: np.ndarray  # int index into AGE_BANDS
    gender: np.ndarray
    tier: np.ndarray
    device: np.ndarray
    signup_day: np.ndarray  # days before start_date
    activity_cum: np.ndarray  # cumulative share of sessions
    user_factors: np.ndarray  # (users, latent_dim)
    user_bias: np.ndarray
    browse_cum: np.ndarray  # (users, categories) cumulative category-feed propensity
    # rooms
    category: np.ndarray  # int index into category_names
    tags: list[list[str]]
    created_day: np.ndarray  # days before start_date (negative: created during the period)
    created: np.ndarray  # creation time, seconds since start_date 00:00 UTC
    popularity: np.ndarray  # exposure share, sums to 1
    popularity_cum: np.ndarray
    by_category: np.ndarray  # room indices sorted by category
    by_category_cum: np.ndarray  # segment c holds values in (c, c + 1]
    item_factors: np.ndarray
    item_bias: np.ndarray
    # demographic x category effects
    age_effect: np.ndarray  # (age bands, categories)
    device_effect: np.ndarray  # (devices, categories)
    hourly_cum: np.ndarray
    # When rooms exist and are live (datagen.live); None: every room, any time (the original
    # world, kept draw for draw so existing configs give the same logs).
    timeline: Timeline | None = None

    @property
    def n_users(self) -> int:
        return len(self.age)

    @property
    def n_items(self) -> int:
        return len(self.category)

    def scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Noise-free click logit of each (user, room) pair (see the module docstring)."""
        cat = self.category[items]
        return (
            np.einsum("ij,ij->i", self.user_factors[users], self.item_factors[items])
            + self.user_bias[users]
            + self.item_bias[items]
            + self.age_effect[self.age[users], cat]
            + self.device_effect[self.device[users], cat]
        )


def build_world(cfg: SyntheticConfig) -> World:
    """Draw users, rooms and the hidden model from `cfg.seed` (independent of event count)."""
    rng = np.random.default_rng([cfg.seed, 0x5EED])
    n_u, n_i, n_c, dim = cfg.users, cfg.items, cfg.categories, cfg.latent_dim

    centroids = rng.normal(size=(n_c, dim))
    centroids *= _TASTE_NORM / np.linalg.norm(centroids, axis=1, keepdims=True)
    age_effect = rng.normal(0.0, 0.4, size=(len(AGE_BANDS), n_c))
    device_effect = rng.normal(0.0, 0.25, size=(len(DEVICES), n_c))

    # Rooms: Zipf-like (log-normal) popularity; factors near their category's centroid.
    category = rng.integers(0, n_c, n_i)
    log_pop = rng.normal(0.0, _POP_SIGMA, n_i)
    popularity = np.exp(log_pop) / np.exp(log_pop).sum()
    z_pop = (log_pop - log_pop.mean()) / (log_pop.std() or 1.0)
    item_factors = centroids[category] + rng.normal(0.0, _FACTOR_NOISE, (n_i, dim))
    item_bias = _ITEM_POP_TO_BIAS * z_pop + rng.normal(0.0, 0.3, n_i)
    pools = [rng.choice(len(_TAGS), 4, replace=False) for _ in range(n_c)]
    n_tags = rng.integers(1, 4, n_i)
    tags = [
        [_TAGS[t] for t in rng.choice(pools[c], k, replace=False)]
        for c, k in zip(category.tolist(), n_tags.tolist(), strict=True)
    ]
    created_day = rng.integers(0, 1000, n_i)
    by_category = np.argsort(category, kind="stable")
    seg_cum = np.empty(n_i)
    for c in range(n_c):
        members = by_category[category[by_category] == c]
        if len(members):
            lo, hi = np.searchsorted(category[by_category], [c, c + 1])
            seg_cum[lo:hi] = c + _cumulative(popularity[members])

    # Users: demographics, activity, one or two favourite categories.
    age = rng.choice(len(AGE_BANDS), n_u, p=_AGE_P)
    gender = rng.choice(len(GENDERS), n_u, p=_GENDER_P)
    tier = rng.choice(len(CITY_TIERS), n_u, p=_TIER_P)
    device = rng.choice(len(DEVICES), n_u, p=_DEVICE_P)
    signup_day = rng.integers(0, 720, n_u)
    activity = rng.lognormal(0.0, 1.0, n_u)
    favourite = np.zeros((n_u, n_c))
    favourite[np.arange(n_u), rng.integers(0, n_c, n_u)] = 1.0
    second = rng.random(n_u) < 0.5
    favourite[np.flatnonzero(second), rng.integers(0, n_c, int(second.sum()))] = 1.0
    favourite /= favourite.sum(axis=1, keepdims=True)
    user_factors = favourite @ centroids + rng.normal(0.0, _FACTOR_NOISE, (n_u, dim))
    user_bias = _INTERCEPT + np.asarray(_TIER_EFFECT)[tier] + rng.normal(0.0, 0.3, n_u)
    has_rooms = np.bincount(category, minlength=n_c) > 0
    browse = np.exp(age_effect[age] + _BROWSE_FAVOURITE_BOOST * favourite) * has_rooms

    # Rooms over time use their own random stream: the draws above stay as they always were.
    created = -created_day.astype(np.int64) * DAY
    hourly_cum = _cumulative(np.asarray(_HOURLY))
    timeline = None
    if cfg.rooms_at_start < 1.0 or cfg.live_share > 0.0:
        time_rng = np.random.default_rng([cfg.seed, 0x71AE])
        created = room_birth(cfg, created_day, time_rng)
        created_day = -(created // DAY)
        timeline = build_timeline(cfg, created, category, popularity, hourly_cum, time_rng)

    start = _dt.datetime.combine(cfg.start_date, _dt.time(), tzinfo=_dt.timezone.utc)
    return World(
        start_epoch=int(start.timestamp()),
        days=cfg.days,
        age=age,
        gender=gender,
        tier=tier,
        device=device,
        signup_day=signup_day,
        activity_cum=_cumulative(activity),
        user_factors=user_factors,
        user_bias=user_bias,
        browse_cum=_cumulative(browse),
        category=category,
        tags=tags,
        created_day=created_day,
        created=created,
        popularity=popularity,
        popularity_cum=_cumulative(popularity),
        by_category=by_category,
        by_category_cum=seg_cum,
        item_factors=item_factors,
        item_bias=item_bias,
        age_effect=age_effect,
        device_effect=device_effect,
        hourly_cum=hourly_cum,
        timeline=timeline,
    )
