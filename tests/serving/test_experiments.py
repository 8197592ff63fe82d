"""serving.experiments: the hash split's shares and stability, config validation, forced arms,
per-arm metrics. The expected buckets are computed here with hashlib, independently."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from serving.errors import ServingError
from serving.experiments import (
    ArmConfig,
    Experiment,
    ExperimentConfig,
    Experiments,
    Route,
    bucket,
)

USERS = [f"u{i:06d}" for i in range(5000)]


def _config(*weights: float, salt: str = "", **arm_fields) -> ExperimentConfig:
    names = "abcdefgh"
    return ExperimentConfig(
        salt=salt,
        arms=[ArmConfig(name=names[i], weight=w, **arm_fields) for i, w in enumerate(weights)],
    )


def _shares(experiment: Experiment) -> dict[str, float]:
    counts = Counter(experiment.assign(u).name for u in USERS)
    return {name: n / len(USERS) for name, n in counts.items()}


def _experiments(config: dict[str, ExperimentConfig]) -> tuple[Experiments, CollectorRegistry]:
    registry = CollectorRegistry()
    return Experiments.from_config(config, registry), registry


def test_bucket_matches_hashlib_and_int_equals_str():
    for user, salt in [("u000001", ""), ("alice", "exp-7"), ("", "s"), ("ünï", "")]:
        digest = hashlib.blake2b(f"{salt}:{user}".encode(), digest_size=8).digest()
        assert bucket(user, salt) == int.from_bytes(digest, "big") / 2**64
    # 42 -> "42": the int id and its decimal string share a bucket.
    digest = hashlib.blake2b(b"x:42", digest_size=8).digest()
    assert bucket(42, "x") == bucket("42", "x") == int.from_bytes(digest, "big") / 2**64
    assert all(0.0 <= bucket(u, "") < 1.0 for u in USERS[:500])


def test_bucket_survives_a_lone_surrogate():
    assert 0.0 <= bucket("a\udc80b", "") < 1.0


def test_80_20_split_within_3_points_and_stable():
    config = _config(0.8, 0.2)
    experiment = Experiment("m", config)
    shares = _shares(experiment)
    assert 0.77 <= shares["a"] <= 0.83, shares
    assert 0.17 <= shares["b"] <= 0.23, shares
    first = [experiment.assign(u).name for u in USERS]
    assert [experiment.assign(u).name for u in USERS] == first
    # A fresh instance (as after a restart) assigns every user the same arm.
    fresh, _ = _experiments({"m": config.model_copy(deep=True)})
    assert [fresh.route("m", "predict", u).arm for u in USERS] == first


def test_three_arms_1_1_2():
    shares = _shares(Experiment("m", _config(1, 1, 2)))
    assert 0.22 <= shares["a"] <= 0.28, shares
    assert 0.22 <= shares["b"] <= 0.28, shares
    assert 0.47 <= shares["c"] <= 0.53, shares


def test_a_new_salt_rebuckets():
    old = Experiment("m", _config(1, 1, salt="one"))
    new = Experiment("m", _config(1, 1, salt="two"))
    moved = sum(old.assign(u).name != new.assign(u).name for u in USERS) / len(USERS)
    # Independent 50/50 assignments differ for about half the users.
    assert 0.4 <= moved <= 0.6, moved


def test_single_arm_takes_everyone():
    experiment = Experiment("m", _config(3.0))
    assert {experiment.assign(u).name for u in USERS} == {"a"}


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"arms": [{"name": "a", "weight": 0}]}, "greater than 0"),
        ({"arms": [{"name": "a", "weight": -1}]}, "greater than 0"),
        ({"arms": [{"name": "a", "weight": float("inf")}]}, "finite"),
        ({"arms": [{"name": "a", "weight": 1, "version": 2, "label": "canary"}]}, "'a'"),
        (
            {"arms": [{"name": "a", "weight": 1}, {"name": "a", "weight": 2}]},
            "duplicate arm name 'a'",
        ),
        ({"arms": []}, "at least 1"),
        ({}, "arms"),
        ({"arms": [{"name": "a", "weight": 1}], "split": 1}, "split"),
        ({"arms": [{"name": "a", "weight": 1, "lable": "x"}]}, "lable"),
        ({"arms": [{"name": "a b", "weight": 1}]}, "pattern"),
        ({"arms": [{"name": "a", "weight": 1, "version": 0}]}, "greater than or equal to 1"),
        ({"arms": [{"name": "a", "weight": 1}], "endpoints": ["rank"]}, "endpoints"),
    ],
)
def test_config_errors_name_the_problem(config, needle):
    with pytest.raises(ValidationError) as err:
        ExperimentConfig.model_validate(config)
    assert needle in str(err.value)


def test_version_and_label_together_says_so():
    with pytest.raises(ValidationError, match="arm 'canary': set version or label, not both"):
        ArmConfig(name="canary", weight=1, version=2, label="stable")


def test_route_fields():
    config = ExperimentConfig(
        arms=[
            ArmConfig(name="control", weight=1),
            ArmConfig(name="v2", weight=1, version=2),
            ArmConfig(name="canary", weight=1, label="canary"),
            ArmConfig(name="other", weight=1, model="fism"),
        ]
    )
    experiments, _ = _experiments({"m": config})
    assert experiments.route("m", "predict", "u", "control") == Route(
        "m", "control", "m", None, None
    )
    assert experiments.route("m", "predict", "u", "v2") == Route("m", "v2", "m", 2, None)
    assert experiments.route("m", "recommend", "u", "canary") == Route(
        "m", "canary", "m", None, "canary"
    )
    assert experiments.route("m", "predict", "u", "other") == Route(
        "m", "other", "fism", None, None
    )
    # Unforced: the hashed arm, the same as Experiment.assign.
    for user in USERS[:200]:
        assert experiments.route("m", "predict", user).arm == experiments.get("m").assign(user).name


def test_forced_arm_known_and_unknown():
    experiments, _ = _experiments({"m": _config(0.999, 0.001)})
    assert all(experiments.route("m", "predict", u, "b").arm == "b" for u in USERS[:50])
    with pytest.raises(ServingError) as err:
        experiments.route("m", "predict", "u1", "x")
    assert err.value.status_code == 400
    assert err.value.message == "unknown arm 'x' for experiment on model 'm'; arms: ['a', 'b']"


def test_forced_arm_without_an_experiment_is_a_400():
    experiments, _ = _experiments(
        {"m": ExperimentConfig(arms=_config(1).arms, endpoints=["predict"])}
    )
    for model, endpoint in [("other", "predict"), ("m", "recommend")]:
        with pytest.raises(ServingError) as err:
            experiments.route(model, endpoint, "u1", "a")
        assert err.value.status_code == 400
        assert "'a'" in err.value.message and repr(model) in err.value.message


def test_route_none_without_experiment_or_endpoint():
    config = ExperimentConfig(arms=_config(1, 1).arms, endpoints=["recommend"])
    experiments, _ = _experiments({"m": config})
    assert experiments.route("other", "predict", "u1") is None
    assert experiments.route("m", "predict", "u1") is None
    assert experiments.route("m", "recommend", "u1") is not None
    assert Experiments.from_config({}, CollectorRegistry()).route("m", "predict", "u1") is None


def test_observe_records_per_arm_metrics():
    experiments, registry = _experiments({"m": _config(1, 1)})
    a = Route("m", "a", "m", None, None)
    b = Route("m", "b", "m", 2, None)
    experiments.observe(a, "predict", 200, 0.003)
    experiments.observe(a, "predict", 200, 0.2)
    experiments.observe(a, "predict", 404, 0.001)
    experiments.observe(b, "recommend", 200, 0.05)

    def count(arm, endpoint, code):
        labels = {"experiment": "m", "arm": arm, "endpoint": endpoint, "code": code}
        return registry.get_sample_value("peppercorn_experiment_requests_total", labels)

    def latency(suffix, arm, endpoint, **extra):
        labels = {"experiment": "m", "arm": arm, "endpoint": endpoint, **extra}
        return registry.get_sample_value(f"peppercorn_experiment_latency_seconds{suffix}", labels)

    assert count("a", "predict", "200") == 2
    assert count("a", "predict", "404") == 1
    assert count("b", "recommend", "200") == 1
    assert count("b", "predict", "200") is None
    assert latency("_count", "a", "predict") == 3
    assert latency("_sum", "a", "predict") == pytest.approx(0.204)
    assert latency("_bucket", "a", "predict", le="0.005") == 2
    assert latency("_bucket", "a", "predict", le="2.5") == 3
    assert latency("_count", "b", "recommend") == 1


def test_check_names_unserved_models():
    config = ExperimentConfig(
        arms=[ArmConfig(name="a", weight=1), ArmConfig(name="b", weight=1, model="fism")]
    )
    virtual = ExperimentConfig(
        arms=[ArmConfig(name="x", weight=1, model="m"), ArmConfig(name="y", weight=1, model="fism")]
    )
    experiments, _ = _experiments({"m": config, "recs": virtual})
    assert experiments.check(["m", "fism"]) == []
    problems = experiments.check(["m"])
    assert len(problems) == 2
    assert all("'fism' is not served" in p for p in problems)
    assert "arm 'b'" in problems[0] and "arm 'y'" in problems[1]
    assert experiments.check(["fism"]) == [
        "experiment on model 'm', arm 'a': model 'm' is not served",
        "experiment on model 'recs', arm 'x': model 'm' is not served",
    ]
