"""`python -m batch.daily`: the scheduled daily chain (issue 7, not built yet)."""

import sys

if __name__ == "__main__":
    sys.stderr.write(
        "make daily: the daily pipeline is not implemented yet (issue 7: batch scoring and the "
        "daily pipeline). Nothing was run.\n"
    )
    sys.exit(2)
