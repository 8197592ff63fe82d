"""Batch scoring: every user's top-K in Spark (`batch.job`, executor side in `batch.scoring`),
run by `python -m pipeline batch` and as the daily chain's last step; see batch/README.md."""
