"""The error every dataset reader raises for a missing or malformed features dataset."""

__all__ = ["DatasetError"]


class DatasetError(RuntimeError):
    """A dataset that is missing or does not follow the §3 layout; the message names the path."""
