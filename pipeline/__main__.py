"""`python -m pipeline COMMAND [--config FILE] [options]` (see pipeline.cli)."""

import sys

from pipeline.cli import main

sys.exit(main())
