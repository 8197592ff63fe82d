"""bench.engine: the two engine spellings train alike; ratios, targets and the table."""

from __future__ import annotations

import numpy as np

from bench.engine import ENGINE_SPELLINGS, PEERS, TARGETS, _ratios, main
from bench.engine_model import engine_optimizer_name, engine_trainer
from bench.engine_report import markdown
from bench.engine_workload import initial_weights, load_positives, make_batches


def _batches(batch_size: int, count: int = 4):
    positives, _ = load_positives(np.random.default_rng(0), count=2000)
    return make_batches(positives, batch_size, count, np.random.default_rng(1))


def test_plain_and_fused_spellings_follow_the_same_trajectory():
    weights = initial_weights(np.random.default_rng(2))
    fused = engine_trainer(weights, fused=True)
    plain = engine_trainer(weights, fused=False)
    for batch in _batches(64) * 2:
        np.testing.assert_allclose(plain(batch), fused(batch), rtol=1e-6)


def test_optimizer_name_is_an_engine_optimizer():
    import engine as tf

    assert hasattr(tf.train, engine_optimizer_name())


def _result(batch_size: int, rates: dict[str, float]) -> dict:
    return {
        "batch_size": batch_size,
        "timed_steps_per_repeat": 10,
        "steps_run": {name: [10] for name in rates},
        "first_step_loss": {name: 0.69 for name in rates},
        "samples_per_sec": {
            name: {"median": r, "min": r, "max": r, "all": [r]} for name, r in rates.items()
        },
    }


def test_ratios_are_against_the_best_peer():
    rates = dict.fromkeys(PEERS, 100.0) | {"tensorflow-v1": 400.0}
    rates |= {"engine-fused": 900.0, "engine-plain": 700.0}
    result = _result(256, rates)
    _ratios(result, 256)
    assert result["best_peer"] == "tensorflow-v1"
    assert result["ratio_vs_best_peer"] == {"engine-fused": 2.25, "engine-plain": 1.75}
    assert result["target_ratio"] == TARGETS[256]
    assert result["meets_target"] == {"engine-fused": True, "engine-plain": False}


def test_markdown_lists_every_framework_and_the_machine():
    rates = dict.fromkeys(PEERS, 100.0) | dict.fromkeys(ENGINE_SPELLINGS, 250.0)
    result = _result(8192, rates)
    _ratios(result, 8192)
    report = {
        "workload": "w",
        "data": "d",
        "threads": 2,
        "thread_control": "t",
        "optimizers": dict.fromkeys(rates, "Adam"),
        "results": [result],
        "machine": {
            "cpu_model": "cpu",
            "usable_cpus": 2,
            "platform": "linux",
            "python": "3",
            "numpy": "2",
            "torch": None,
            "load_average_1_5_15": [0.5, 0.5, 0.5],
        },
    }
    text = markdown(report)
    for name in rates:
        assert f"| 8192 | {name} |" in text
    assert "2.50x" in text and "yes" in text and "Machine: cpu" in text


def test_main_runs_the_engine_alone(tmp_path):
    code = main(
        [
            "--no-torch",
            "--no-tf",
            "--batch-sizes",
            "32",
            "--steps",
            "3",
            "--repeats",
            "1",
            "--warmup",
            "1",
            "--profile-steps",
            "40",
            "--out-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    text = (tmp_path / "engine.md").read_text()
    assert "| 32 | engine-plain |" in text
    assert "engine-plain training steps" in (tmp_path / "engine_profile.txt").read_text()
