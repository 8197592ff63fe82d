"""`python -m batch`: Spark batch scoring of top-K recommendations (issue 7, not built yet)."""

import sys

sys.stderr.write(
    "make batch: Spark batch scoring is not implemented yet (issue 7: batch scoring and the "
    "daily pipeline). Nothing was run.\n"
)
sys.exit(2)
