"""Experiments: `/predict` and `/recommend` traffic for a model split between arms (model
versions, labels or other models) by a stable hash of the user id, with per-arm metrics.

The serving config holds `experiments: dict[str, ExperimentConfig]` keyed by the model name
the experiment applies to: every request for that model (named, or the default model) on a
listed endpoint is routed to one arm. A user's arm depends only on the salt and the user id,
so each user stays in one arm across requests, processes and restarts; a new salt re-buckets.

`Experiments.route` only decides; the router acquires `route.model` at `route.version` /
`route.label` from the model manager, whose own 404s name an arm's model, version or label
that is not served (`check` reports such arms before any request does).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram

from peppercorn.config import ArmConfig, ExperimentConfig
from serving import errors

__all__ = ["ArmConfig", "Experiment", "ExperimentConfig", "Experiments", "Route", "bucket"]

Endpoint = Literal["predict", "recommend"]

# A copy of serving.metrics._LATENCY_BUCKETS (module-private there), so per-arm latencies
# compare bucket for bucket with the server-wide histogram.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def bucket(user_id: str | int, salt: str) -> float:
    """The user's point in [0, 1): the first 8 bytes of blake2b(f"{salt}:{user_id}") over 2**64.

    A cryptographic hash, not Python's `hash()` (salted per process), so it is the same in
    every process and Python version; an int id and its decimal string share a bucket, as they
    share a vocabulary entry."""
    # surrogatepass: a lone surrogate in an id must give a bucket, not a UnicodeEncodeError.
    key = f"{salt}:{user_id}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Route:
    """Where one request goes: `experiment` (the model it was made for) and `arm` name it;
    `model`, `version` and `label` are what to acquire from the model manager."""

    experiment: str
    arm: str
    model: str
    version: int | None
    label: str | None


class Experiment:
    """The split of one model's traffic between the arms of `config`."""

    def __init__(self, model: str, config: ExperimentConfig):
        self.model = model
        self.config = config
        total = sum(a.weight for a in config.arms)
        # Upper bounds of every arm but the last, which takes the rest up to 1: rounding in the
        # cumulative sum can then never leave a bucket without an arm.
        bounds, acc = [], 0.0
        for arm in config.arms[:-1]:
            acc += arm.weight
            bounds.append(acc / total)
        self._bounds = bounds
        self._by_name = {a.name: a for a in config.arms}

    @property
    def arms(self) -> list[ArmConfig]:
        return list(self.config.arms)

    def assign(self, user_id: str | int) -> ArmConfig:
        """The arm `user_id` is in (always the same one for the same salt and arms)."""
        return self.config.arms[bisect_right(self._bounds, bucket(user_id, self.config.salt))]

    def arm(self, name: str) -> ArmConfig:
        """The arm called `name`; a 400 naming it and listing the arms if there is none."""
        try:
            return self._by_name[name]
        except KeyError:
            names = list(self._by_name)
            raise errors.bad_argument(
                f"unknown arm {name!r} for experiment on model {self.model!r}; arms: {names}"
            ) from None

    def route(self, arm: ArmConfig) -> Route:
        return Route(self.model, arm.name, arm.model or self.model, arm.version, arm.label)


class Experiments:
    """All experiments of a server, keyed by model name, and their per-arm metrics."""

    def __init__(self, experiments: dict[str, Experiment], registry: CollectorRegistry):
        self._experiments = experiments
        self.requests = Counter(
            "peppercorn_experiment_requests",
            "requests answered per experiment arm",
            ["experiment", "arm", "endpoint", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "peppercorn_experiment_latency_seconds",
            "time from request to full response per experiment arm",
            ["experiment", "arm", "endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

    @classmethod
    def from_config(
        cls, config: dict[str, ExperimentConfig], metrics_registry: CollectorRegistry
    ) -> Experiments:
        """Experiments from the serving config's `experiments`; the metrics are registered on
        `metrics_registry` (once: a second call on the same registry is a duplicate)."""
        return cls({m: Experiment(m, c) for m, c in config.items()}, metrics_registry)

    def get(self, model: str) -> Experiment | None:
        return self._experiments.get(model)

    def route(
        self, model: str, endpoint: str, user_id: str | int, requested_arm: str | None = None
    ) -> Route | None:
        """The arm serving `user_id`'s request for `model` on `endpoint` (`requested_arm`
        forces one, for QA); None when no experiment splits that model on that endpoint."""
        experiment = self._experiments.get(model)
        if experiment is None or endpoint not in experiment.config.endpoints:
            if requested_arm is not None:
                # A forced arm that would be silently ignored would mislead whoever tests it.
                raise errors.bad_argument(
                    f"unknown arm {requested_arm!r}: no experiment on model {model!r} "
                    f"for /{endpoint}"
                )
            return None
        if requested_arm is not None:
            return experiment.route(experiment.arm(requested_arm))
        return experiment.route(experiment.assign(user_id))

    def observe(self, route: Route, endpoint: str, code: int, seconds: float) -> None:
        """Counts one answered request of `route`'s arm and records its latency."""
        self.requests.labels(route.experiment, route.arm, endpoint, str(code)).inc()
        self.latency.labels(route.experiment, route.arm, endpoint).observe(seconds)

    def check(self, model_names: list[str]) -> list[str]:
        """Problems of the configuration against the served `model_names`: an arm whose model
        is not served (versions and labels are checked by the model manager when a request
        acquires them)."""
        served = set(model_names)
        problems = []
        for name, experiment in self._experiments.items():
            for arm in experiment.arms:
                # An arm without `model` serves the experiment's own model; when every arm
                # names one, the experiment's name may be a virtual model that is not served.
                target = arm.model or name
                if target not in served:
                    problems.append(
                        f"experiment on model {name!r}, arm {arm.name!r}: "
                        f"model {target!r} is not served"
                    )
        return problems
