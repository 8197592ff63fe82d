"""Batch jobs: Spark top-K scoring and the scheduled daily chain (issue 7, not built yet)."""
