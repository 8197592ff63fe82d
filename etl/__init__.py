"""Spark ETL: raw logs or MovieLens/NCF files → clean events, users, items and a quarantine."""

from etl.job import EtlError, EtlInputError, run

__all__ = ["EtlError", "EtlInputError", "run"]
