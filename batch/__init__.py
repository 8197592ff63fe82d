"""Batch jobs: Spark top-K scoring of every user (`python -m batch`) and the scheduled daily
chain etl -> train -> gate -> export -> batch (`python -m batch.daily`); see batch/README.md."""
